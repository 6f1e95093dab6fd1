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
  return wrk.format("GET", path, {["Authorization"] = "Bearer " .. record[1]})
end
