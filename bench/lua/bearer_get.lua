-- GET args[2] with the Bearer token of each user in turn (args: data file, path, threads).
local i = 0
local path

function init(args)
  load_records(args[1], tonumber(args[3]))
  path = args[2]
end

function request()
  i = i + 1
  local record = records[(i % #records) + 1]
  local headers = {["Authorization"] = "Bearer " .. record[1]}
  for name, value in pairs(wrk.headers) do headers[name] = headers[name] or value end
  return wrk.format("GET", path, headers)
end
