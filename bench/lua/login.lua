-- POST /auth/login as each user in turn (records: username, password).
local i = 0

function init(args)
  load_records(args[1], tonumber(args[3]))
end

function request()
  i = i + 1
  local record = records[(i % #records) + 1]
  return wrk.format("POST", "/auth/login", {["Content-Type"] = "application/json"},
    string.format('{"username": "%s", "password": "%s"}', record[1], record[2]))
end
