// Signalling client for protocol v1 (docs/protocol.md): one WebSocket per participant,
// JSON messages, requests matched to replies by `rid`.
//
// The client survives a dropped socket: it reconnects with exponential backoff and sends
// `hello{resume}` with the token of the last `welcome`, so the server reattaches the same
// participant (same id, same transports). Events (EventTarget, `event.detail`):
//   "welcome"  {welcome, reconnect: bool}       every welcome, first or after a reconnect
//   "message"  the parsed server message         everything that is not a reply/welcome
//   "state"    {state, previous}                 idle|connecting|open|reconnecting|closed
//   "closed"   {reason: "left"|"lost"|"replaced"|"meeting_closed"|"meeting_not_found"|
//               "unsupported_version"}

export const PROTOCOL_VERSIONS = [1];

const BACKOFF_START_MS = 250;
const BACKOFF_MAX_MS = 5000;
const GIVE_UP_AFTER_MS = 90_000; // longer than the server's 30 s resume window
const PING_INTERVAL_MS = 10_000;
const SILENCE_LIMIT_MS = 25_000; // no message (not even a pong) this long: the socket is dead
const REQUEST_TIMEOUT_MS = 20_000;
const FATAL_CODES = new Set(["meeting_closed", "meeting_not_found", "unsupported_version"]);
// Refusals of a hello (docs/protocol.md, "Access"): the join ends with the reason.
export const JOIN_REFUSALS = new Set([
  "meeting_locked",
  "sign_in_required",
  "pin_required",
  "wrong_pin",
  "removed",
  "rate_limited",
  "denied",
  "invalid_invite",
  "invalid_moderator_key",
]);
// WebSocket close codes of the server (incamera.signalling.session) that end the session.
const FATAL_CLOSE = {
  4400: "unsupported_version",
  4403: "lost", // forbidden origin
  4404: "meeting_not_found",
  4409: "replaced", // the same session resumed elsewhere (another tab)
  4410: "meeting_closed",
  4401: "removed", // a moderator removed this participant
};

export class SignallingError extends Error {
  constructor(code, reason) {
    super(reason || code);
    this.code = code;
  }
}

export function meetingSocketUrl(meetingId, location = window.location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/api/meetings/${encodeURIComponent(meetingId)}/ws`;
}

export class SignallingClient extends EventTarget {
  constructor(url, name, { helloExtra = {} } = {}) {
    super();
    this.url = url;
    this.name = name;
    this.helloExtra = helloExtra; // extra hello fields (test hooks the server must allow)
    this.state = "idle";
    this.ws = null;
    this.welcome = null;
    this.resumeToken = null;
    this.nextRid = 1;
    this.pending = new Map(); // rid -> {resolve, reject, timer}
    this.attempt = 0;
    this.lostSince = 0;
    this.lastHeard = 0;
    this.pingTimer = null;
    this.retryTimer = null;
    this.firstJoin = null; // {resolve, reject} until the first welcome
  }

  /** Connects and says hello; resolves with the first `welcome`. */
  join() {
    return new Promise((resolve, reject) => {
      this.firstJoin = { resolve, reject };
      this.open();
    });
  }

  setState(state) {
    if (state === this.state) return;
    const previous = this.state;
    this.state = state;
    this.emit("state", { state, previous });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  open() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.state !== "reconnecting") this.setState("connecting");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      this.fail("lost", err);
      return;
    }
    this.ws = ws;
    ws.addEventListener("open", () => {
      if (ws !== this.ws) return;
      this.lastHeard = Date.now();
      const hello = { type: "hello", versions: PROTOCOL_VERSIONS, name: this.name, ...this.helloExtra };
      if (this.resumeToken) hello.resume = this.resumeToken;
      ws.send(JSON.stringify(hello));
    });
    ws.addEventListener("message", (event) => {
      if (ws !== this.ws) return;
      this.lastHeard = Date.now();
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        console.warn("incamera: ignoring a non-JSON message");
        return;
      }
      this.onMessage(message);
    });
    ws.addEventListener("close", (event) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.onSocketClosed(event);
    });
  }

  onMessage(message) {
    if (message.type === "welcome") {
      const reconnect = this.welcome !== null;
      this.welcome = message;
      this.resumeToken = message.resume_token;
      this.attempt = 0;
      this.lostSince = 0;
      this.setState("open");
      this.startPings();
      if (this.firstJoin) {
        this.firstJoin.resolve(message);
        this.firstJoin = null;
      }
      this.emit("welcome", { welcome: message, reconnect });
      return;
    }
    if ((message.type === "reply" || message.type === "error") && message.rid != null) {
      const waiting = this.pending.get(message.rid);
      if (waiting) {
        this.pending.delete(message.rid);
        clearTimeout(waiting.timer);
        if (message.type === "reply") waiting.resolve(message);
        else waiting.reject(new SignallingError(message.code, message.reason));
        return;
      }
    }
    if (message.type === "error") {
      if (FATAL_CODES.has(message.code) || (this.state !== "open" && JOIN_REFUSALS.has(message.code))) {
        this.fail(message.code, new SignallingError(message.code, message.reason));
        return;
      }
      if (this.state !== "open" && this.resumeToken) {
        // The resume token was refused (expired): join again as a new participant.
        console.warn("incamera: resume refused:", message.code, message.reason);
        this.resumeToken = null;
        this.ws?.close();
        return;
      }
      console.warn("incamera: server error:", message.code, message.reason);
    }
    if (message.type === "pong") return;
    this.emit("message", message);
  }

  onSocketClosed(event) {
    this.stopPings();
    this.rejectPending(new SignallingError("disconnected", "the connection was lost"));
    if (this.state === "closed") return;
    const fatal = event ? FATAL_CLOSE[event.code] : undefined;
    if (fatal) {
      this.fail(fatal, new SignallingError(fatal, event.reason));
      return;
    }
    if (!this.welcome && this.firstJoin && this.attempt >= 3) {
      this.fail("lost", new SignallingError("unreachable", "the server could not be reached"));
      return;
    }
    if (!this.lostSince) this.lostSince = Date.now();
    if (Date.now() - this.lostSince > GIVE_UP_AFTER_MS) {
      this.fail("lost", new SignallingError("lost", "the connection was lost"));
      return;
    }
    this.setState("reconnecting");
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * 2 ** this.attempt);
    this.attempt += 1;
    // A little jitter so a whole meeting does not come back in lock step.
    this.retryTimer = setTimeout(() => this.open(), delay * (0.8 + Math.random() * 0.4));
  }

  fail(reason, error) {
    this.setState("closed");
    this.stopPings();
    clearTimeout(this.retryTimer);
    const ws = this.ws;
    this.ws = null;
    ws?.close();
    this.rejectPending(error);
    if (this.firstJoin) {
      this.firstJoin.reject(error instanceof SignallingError ? error : new SignallingError(reason));
      this.firstJoin = null;
    }
    this.emit("closed", { reason });
  }

  rejectPending(error) {
    for (const waiting of this.pending.values()) {
      clearTimeout(waiting.timer);
      waiting.reject(error);
    }
    this.pending.clear();
  }

  startPings() {
    this.stopPings();
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastHeard > SILENCE_LIMIT_MS) {
        this.dropSocket();
        return;
      }
      this.send("ping");
    }, PING_INTERVAL_MS);
  }

  stopPings() {
    clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  get isOpen() {
    return this.state === "open" && this.ws?.readyState === WebSocket.OPEN;
  }

  /** Sends a message without waiting for an answer; false when not connected. */
  send(type, fields = {}) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify({ type, ...fields }));
    return true;
  }

  /** Sends a request and resolves with its `reply` (rejects with SignallingError). */
  request(type, fields = {}, timeoutMs = REQUEST_TIMEOUT_MS) {
    if (!this.isOpen) {
      return Promise.reject(new SignallingError("disconnected", "not connected"));
    }
    const rid = this.nextRid++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(rid);
        reject(new SignallingError("timeout", `no answer to ${type}`));
      }, timeoutMs);
      this.pending.set(rid, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ type, rid, ...fields }));
    });
  }

  /** Closes the socket as a network failure would (reconnects; used by tests). */
  dropSocket() {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    ws.close();
    this.onSocketClosed({ code: 1006 });
  }

  /** Leaves the meeting for good. */
  leave() {
    if (this.state === "closed") return;
    this.send("leave");
    this.fail("left", new SignallingError("left"));
  }
}
