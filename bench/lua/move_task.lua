-- POST /api/tasks/{id}/move to the end of another column, cycling through the columns.
local columns = {"todo", "in_progress", "done"}
local i = 0

function init(args)
  load_records(args[1], tonumber(args[3]))
end

function request()
  i = i + 1
  local record = records[(i % #records) + 1]
  local body = string.format('{"status": "%s"}', columns[(i % 3) + 1])
  return wrk.format("POST", "/api/tasks/" .. record[2] .. "/move", {
    ["Authorization"] = "Bearer " .. record[1],
    ["Content-Type"] = "application/json",
  }, body)
end
