-- POST /api/tasks with the Bearer token from $TOKEN.
wrk.method = "POST"
wrk.path = "/api/tasks"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"title": "bench task", "description": "created by wrk", "labels": ["bench"]}'
