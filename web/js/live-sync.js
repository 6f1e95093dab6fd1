// Live updates: the change log's cursor, then the Server-Sent Events stream with a stream
// ticket (EventSource cannot send headers), as in docs/tasks-api.md "Staying in sync".
// `onChange(entry)` gets every change after the cursor; `load()` reads everything again.

import { api } from "./api.js";
import { refresh } from "./session.js";

export class LiveSync {
  constructor({ load, onChange, onStatus }) {
    this.load = load;
    this.onChange = onChange;
    this.onStatus = onStatus ?? (() => {});
    this.cursor = null;
    this.source = null;
    this.stopped = false;
    this.timer = null;
  }

  /** Take the cursor first, then read in full, then follow what comes after the cursor. */
  async start() {
    this.cursor = (await api("/api/changes")).data.next_cursor;
    await this.load();
    this.listen();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.source?.close();
    this.source = null;
  }

  async listen() {
    if (this.stopped) return;
    let ticket;
    try {
      await api(`/api/changes?since=${encodeURIComponent(this.cursor)}&limit=1`);
      ticket = (await api("/api/events/tickets", { method: "POST" })).data.ticket;
    } catch (error) {
      if (error.code === "sync_expired") {
        this.start().catch(() => this.retry());
        return;
      }
      if (error.status === 401) return; // the session has ended: the app shows the login
      this.retry();
      return;
    }
    if (this.stopped) return;
    const url = `/api/events?ticket=${encodeURIComponent(ticket)}&last_event_id=${encodeURIComponent(this.cursor)}`;
    const source = new EventSource(url);
    this.source = source;
    source.addEventListener("ready", () => this.onStatus("live"));
    source.addEventListener("change", (event) => {
      const change = JSON.parse(event.data);
      this.cursor = change.cursor;
      this.onChange(change);
    });
    source.addEventListener("end", async (event) => {
      source.close();
      this.onStatus("reconnecting");
      const { code } = JSON.parse(event.data);
      if (code !== "server_shutdown") {
        try {
          await refresh(); // token_revoked: this fails and the session ends
        } catch {
          return;
        }
      }
      this.listen();
    });
    source.onerror = () => {
      // Offline, or EventSource's own reconnect met its spent ticket: start again.
      if (source.readyState === EventSource.CLOSED && this.source === source) {
        this.onStatus("reconnecting");
        this.retry();
      }
    };
  }

  retry() {
    clearTimeout(this.timer);
    if (!this.stopped) this.timer = setTimeout(() => this.listen(), 2000);
  }
}
