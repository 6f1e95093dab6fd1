-- POST /auth/refresh. Refresh tokens are single use: each answer's new token goes back into
-- the queue, so every request presents a live, never-used token.
local queue = {}
local head, tail = 1, 0

function init(args)
  load_records(args[1], tonumber(args[3]))
  for _, record in ipairs(records) do
    tail = tail + 1
    queue[tail] = record[1]
  end
end

function request()
  local token = "exhausted"  -- every token in flight or lost to an error: a counted 401
  if head <= tail then
    token = queue[head]
    queue[head] = nil
    head = head + 1
  end
  return wrk.format("POST", "/auth/refresh", {["Content-Type"] = "application/json"},
    '{"refresh_token": "' .. token .. '"}')
end

function response(status, headers, body)
  local token = string.match(body, '"refresh_token":"([^"]+)"')
  if token then
    tail = tail + 1
    queue[tail] = token
  end
end
