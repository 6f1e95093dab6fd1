-- GET /api/tasks?limit=20 with the Bearer token from $TOKEN.
wrk.method = "GET"
wrk.path = "/api/tasks?limit=20"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
