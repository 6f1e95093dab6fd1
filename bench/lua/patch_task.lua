-- PATCH /api/tasks/{id} with If-Match. Records (token, id, version) form a queue: a record is
-- taken for a request and put back with the version the answer carries, so no two requests in
-- flight ever touch one task and every If-Match is current (a 412 here is a real error).
local queue = {}
local head, tail = 1, 0
local by_id = {}
local i = 0

function init(args)
  load_records(args[1], tonumber(args[3]))
  for _, record in ipairs(records) do
    tail = tail + 1
    queue[tail] = record
    by_id[record[2]] = record
  end
end

function request()
  i = i + 1
  local record
  if head <= tail then
    record = queue[head]
    queue[head] = nil
    head = head + 1
  else
    -- Every record in flight or lost to an error answer: reuse one (a 412 then counts as an
    -- error, which is what it is).
    record = records[(i % #records) + 1]
  end
  local body = string.format('{"description": "edit %d-%d"}', tid, i)
  return wrk.format("PATCH", "/api/tasks/" .. record[2], {
    ["Authorization"] = "Bearer " .. record[1],
    ["Content-Type"] = "application/json",
    ["If-Match"] = '"' .. record[3] .. '"',
  }, body)
end

function response(status, headers, body)
  local id = string.match(body, '"id":"([^"]+)"')
  local version = string.match(body, '"version":(%d+)')
  local record = id and by_id[id]
  if record and version then
    record[3] = version
    tail = tail + 1
    queue[tail] = record
  end
end
