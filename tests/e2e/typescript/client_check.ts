// A frontend's first calls, written against the types openapi-typescript generates from the
// documents the running stack serves (generated/auth.ts, generated/tasks.ts), with openapi-fetch.
// `tsc --strict` must accept it (a title-only create, the If-Match header, the error body), and
// node runs it against the gateway (GATEWAY_URL): tests/e2e/test_typescript_client.py.
import createClient from "openapi-fetch";
import type { paths as AuthPaths } from "./generated/auth.js";
import type { paths as TasksPaths, components } from "./generated/tasks.js";

type Task = components["schemas"]["TaskOut"];

const baseUrl = process.env.GATEWAY_URL ?? "http://localhost:8080";
const auth = createClient<AuthPaths>({ baseUrl });

function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

async function main(): Promise<void> {
  const name = `ts_${Date.now().toString(36)}${Math.floor(Math.random() * 1e6)}`;
  const password = "correct horse battery staple";

  const registered = await auth.POST("/auth/register", {
    body: { email: `${name}@example.org`, username: name, password },
  });
  check(registered.response.status === 201, `register: ${registered.response.status}`);

  const login = await auth.POST("/auth/login", { body: { username: name, password } });
  check(login.data !== undefined, `login: ${JSON.stringify(login.error)}`);
  const token: string = login.data.access_token;

  const tasks = createClient<TasksPaths>({
    baseUrl,
    headers: { Authorization: `Bearer ${token}` },
  });

  // Only the title: every other field has a server-side default.
  const first = await tasks.POST("/api/tasks", { body: { title: "Write the README" } });
  check(first.data !== undefined, `create: ${JSON.stringify(first.error)}`);
  const second = await tasks.POST("/api/tasks", { body: { title: "Ship it", priority: "high" } });
  check(second.data !== undefined, `create: ${JSON.stringify(second.error)}`);
  const staleEtag = first.response.headers.get("ETag");
  check(staleEtag !== null, "create: no ETag");

  const list = await tasks.GET("/api/tasks", { params: { query: { limit: 10 } } });
  check(list.data !== undefined, `list: ${JSON.stringify(list.error)}`);
  const titles = list.data.items.map((task: Task) => task.title);
  check(titles.includes("Write the README"), `list: ${titles.join(", ")}`);

  // Move the first card after the second, in the same column, with the version just read.
  const moved = await tasks.POST("/api/tasks/{task_id}/move", {
    params: { path: { task_id: first.data.id }, header: { "if-match": staleEtag } },
    body: { after_id: second.data.id },
  });
  check(moved.data !== undefined, `move: ${JSON.stringify(moved.error)}`);
  const board = await tasks.GET("/api/board");
  check(board.data !== undefined, `board: ${JSON.stringify(board.error)}`);
  const todo = board.data.columns.find((column) => column.status === "todo");
  const order = todo?.items.map((task: Task) => task.id) ?? [];
  check(order.indexOf(first.data.id) > order.indexOf(second.data.id), "move: not after the anchor");

  // The ETag read before the move is stale now: the change is refused, with the current one.
  const stale = await tasks.PATCH("/api/tasks/{task_id}", {
    params: { path: { task_id: first.data.id }, header: { "if-match": staleEtag } },
    body: { title: "Lost update" },
  });
  check(stale.response.status === 412, `stale If-Match: ${stale.response.status}`);
  check(stale.error?.code === "version_mismatch", `stale If-Match: ${JSON.stringify(stale.error)}`);
  check(stale.response.headers.get("ETag") === moved.response.headers.get("ETag"), "412 ETag");

  console.log(JSON.stringify({ ok: true, user: name, tasks: titles.length }));
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
