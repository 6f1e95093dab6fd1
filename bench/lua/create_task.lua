-- POST /api/tasks as each user in turn.
local i = 0

function init(args)
  load_records(args[1], tonumber(args[3]))
end

function request()
  i = i + 1
  local record = records[(i % #records) + 1]
  local body = string.format('{"title": "bench card %d-%d", "labels": ["bench"]}', tid, i)
  return wrk.format("POST", "/api/tasks", {
    ["Authorization"] = "Bearer " .. record[1],
    ["Content-Type"] = "application/json",
  }, body)
end
