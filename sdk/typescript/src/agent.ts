// The agent's side: its access tokens (`POST /oauth/token`, client credentials, SPEC §5), its
// heartbeat, and its lifecycle as the origin's event stream tells it (`GET /v1/events/stream`
// with the agent's own key sees the events about that agent), so that an agent being
// suspended hears of it within moments and can drain its work.

import { errorFromAnswer, VouchError } from "./errors.js";
import { reasonOf, Transport, USER_AGENT, type TransportOptions } from "./http.js";
import { parseRetryAfter, retryableStatus, retryDelay, sleep } from "./retry.js";
import { SseParser } from "./sse.js";
import type { AgentStatus, Health, VouchEvent } from "./types.js";

/** How long a stream may stay silent before it is taken for dead (the origin sends a keep-alive every 15 s). */
export const STREAM_SILENCE_MS = 45_000;

export interface AgentOptions extends TransportOptions {
  /** The origin (`https://registry.example.com`, locally `http://127.0.0.1:8080`). */
  originUrl: string;
  /** The agent's id (`ap_…`). */
  agentId: string;
  /** The agent's API key (`vk_agent_…`), shown once when it was registered or rotated. */
  apiKey: string;
  /** The default `audience` of its tokens: a partner's id (`pt_…`) lets that partner commit with them. */
  audience?: string;
  /** The default `scope` (space-separated capability ids; default: all it holds). */
  scope?: string;
  /** Called once when the agent becomes suspended: stop taking work, finish or hand back what is under way. */
  onSuspended?: (change: LifecycleChange) => void | Promise<void>;
  /** Called when a suspended agent is active again. */
  onActivated?: (change: LifecycleChange) => void | Promise<void>;
  /** Called when the agent is revoked (for good: its key and tokens stop working). */
  onRevoked?: (change: LifecycleChange) => void | Promise<void>;
  /** Every event of the agent's stream, as it arrives. */
  onEvent?: (event: VouchEvent) => void | Promise<void>;
  /** Failures of the background work (a stream that broke and is being reopened, a heartbeat that failed). */
  onError?: (error: unknown) => void;
  /** How often {@link AgentClient.start} heartbeats (at once, then every so many milliseconds; default 30 000; 0: never). */
  heartbeatIntervalMs?: number;
}

/** A change of the agent's status, from its event stream or its heartbeat's answer. */
export interface LifecycleChange {
  status: AgentStatus;
  previousStatus: AgentStatus | undefined;
  /** The reason the admin gave, when the stream carried it. */
  reason: string | null;
  /** The passport version of the change, when the stream carried it. */
  version: number | undefined;
  via: "stream" | "heartbeat";
  /** The stream's event (`passport.status_changed`), when it came that way. */
  event: VouchEvent | undefined;
}

/** The answer of `POST /oauth/token`. */
export interface TokenResponse {
  access_token: string;
  token_type: "Bearer";
  expires_in: number;
  scope: string;
  issued_token_type?: string;
}

export interface HeartbeatAck {
  agent_id: string;
  status: AgentStatus;
  last_seen_at: string;
  health: Health;
}

export interface TokenOptions {
  audience?: string;
  scope?: string;
}

/** A client for an agent of the registry. */
export function Agent(options: AgentOptions): AgentClient {
  return new AgentClient(options);
}

export class AgentClient {
  readonly agentId: string;
  readonly transport: Transport;
  private readonly options: AgentOptions;
  private readonly tokens = new Map<string, { token: string; refreshAt: number }>();
  private readonly fetching = new Map<string, Promise<string>>();
  private known: AgentStatus | undefined;
  private last: string | undefined;
  private running: { abort: AbortController; done: Promise<void>; heartbeat: ReturnType<typeof setInterval> | undefined } | undefined;
  private opened: { promise: Promise<void>; resolve: () => void; reject: (error: unknown) => void; settled: boolean } | undefined;
  private queue: Promise<void> = Promise.resolve();

  constructor(options: AgentOptions) {
    if (!/^ap_[0-9a-f]{32}$/.test(options.agentId)) throw new VouchError("config", "an agent id is `ap_` and 32 hex digits");
    if (!options.apiKey.startsWith("vk_agent_")) throw new VouchError("config", "an agent's API key starts with `vk_agent_`");
    this.options = options;
    this.agentId = options.agentId;
    this.transport = new Transport(options.originUrl, options);
  }

  /** The status the agent last heard it has (`undefined` before the first heartbeat or status event). */
  get status(): AgentStatus | undefined {
    return this.known;
  }

  /** The id of the last stream message received: where a reopened stream resumes. */
  get lastEventId(): string | undefined {
    return this.last;
  }

  /**
   * An access token (ES256 JWT, 300 s by default), kept and used until a minute before it
   * expires, then fetched anew; callers asking at once share one request. `audience` and
   * `scope` default to the client's. A suspended or revoked agent gets none (`invalid_client`).
   */
  async token(options: TokenOptions = {}): Promise<string> {
    const audience = options.audience ?? this.options.audience;
    const scope = options.scope ?? this.options.scope;
    const key = `${audience ?? ""}\n${scope ?? ""}`;
    const kept = this.tokens.get(key);
    if (kept !== undefined && Date.now() < kept.refreshAt) return kept.token;
    const pending = this.fetching.get(key);
    if (pending !== undefined) return pending;
    const fetching = this.fetchToken(audience, scope).then(
      (response) => {
        const lifetimeMs = response.expires_in * 1000;
        this.tokens.set(key, { token: response.access_token, refreshAt: Date.now() + Math.max(0, lifetimeMs - Math.min(60_000, lifetimeMs / 5)) });
        return response.access_token;
      },
    );
    this.fetching.set(key, fetching);
    try {
      return await fetching;
    } finally {
      this.fetching.delete(key);
    }
  }

  /** `POST /oauth/token` (client credentials) as is, never kept. */
  async fetchToken(audience?: string, scope?: string): Promise<TokenResponse> {
    const form: Record<string, string> = {
      grant_type: "client_credentials",
      client_id: this.agentId,
      client_secret: this.options.apiKey,
    };
    if (audience !== undefined) form.audience = audience;
    if (scope !== undefined) form.scope = scope;
    // Asking again is harmless: a token more, never a change.
    return this.transport.json<TokenResponse>({ method: "POST", path: "/oauth/token", form, repeatable: true });
  }

  /** Forgets every kept token (the next {@link token} fetches one). */
  forgetTokens(): void {
    this.tokens.clear();
  }

  /** `POST /v1/agents/{id}/heartbeat`: records `last_seen_at` and `health`; the answer says the agent's status. */
  async heartbeat(health: Health = "healthy"): Promise<HeartbeatAck> {
    const ack = await this.transport.json<HeartbeatAck>({
      method: "POST",
      path: `/v1/agents/${this.agentId}/heartbeat`,
      headers: { authorization: `Bearer ${this.options.apiKey}` },
      json: { health },
      repeatable: true,
    });
    await this.serially(() => this.observe(ack.status, "heartbeat", undefined));
    return ack;
  }

  /**
   * Starts the background work: the lifecycle stream (reopened after any break, resuming after
   * the last event received, so nothing is missed) and, every `heartbeatIntervalMs`, a
   * heartbeat. Resolves once the stream is open: every status change from then on reaches the
   * callbacks. A key the origin refuses (rotated, or the agent revoked) ends the stream for good:
   * before it opened, `start` rejects with that error; later, `onError` hears of it.
   */
  async start(): Promise<void> {
    if (this.running !== undefined) return this.opened?.promise;
    const abort = new AbortController();
    const opened: NonNullable<AgentClient["opened"]> = { promise: Promise.resolve(), resolve: () => {}, reject: () => {}, settled: false };
    opened.promise = new Promise<void>((resolve, reject) => {
      opened.resolve = () => {
        opened.settled = true;
        resolve();
      };
      opened.reject = (error: unknown) => {
        opened.settled = true;
        reject(error);
      };
    });
    this.opened = opened;
    const interval = this.options.heartbeatIntervalMs ?? 30_000;
    const heartbeat =
      interval > 0
        ? setInterval(() => {
            this.heartbeat().catch((error: unknown) => this.report(error));
          }, interval)
        : undefined;
    const done = this.streamLoop(abort.signal);
    this.running = { abort, done, heartbeat };
    if (interval > 0) this.heartbeat().catch((error: unknown) => this.report(error));
    try {
      await opened.promise;
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  /** Stops the stream and the heartbeats; resolves when they have stopped. */
  async stop(): Promise<void> {
    const running = this.running;
    if (running === undefined) return;
    this.running = undefined;
    if (running.heartbeat !== undefined) clearInterval(running.heartbeat);
    running.abort.abort();
    await running.done;
    await this.queue;
  }

  private report(error: unknown): void {
    if (this.options.onError) this.options.onError(error);
  }

  /** Runs `work` after everything queued before it, so that callbacks see changes in order. */
  private serially(work: () => Promise<void>): Promise<void> {
    const next = this.queue.then(work, work);
    this.queue = next.catch((error: unknown) => this.report(error));
    return this.queue;
  }

  private async streamLoop(signal: AbortSignal): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      let wait: number | undefined;
      try {
        const outcome = await this.streamOnce(signal);
        if (outcome.kind === "fatal") {
          if (this.opened !== undefined && !this.opened.settled) this.opened.reject(outcome.error);
          else this.report(outcome.error);
          return;
        }
        if (outcome.kind === "ended") {
          failures = 0;
          continue;
        }
        this.report(outcome.error);
        wait = outcome.retryAfterMs;
      } catch (error) {
        if (signal.aborted) break;
        this.report(error);
      }
      failures++;
      const delay = retryDelay({ maxAttempts: Number.MAX_SAFE_INTEGER, baseDelayMs: 1_000, maxDelayMs: 30_000 }, failures, wait) ?? 30_000;
      try {
        await sleep(delay, signal);
      } catch {
        break;
      }
    }
  }

  /** One stream, read until it ends. */
  private async streamOnce(
    signal: AbortSignal,
  ): Promise<{ kind: "ended" } | { kind: "fatal"; error: VouchError } | { kind: "retry"; error: VouchError; retryAfterMs: number | undefined }> {
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.options.apiKey}`,
      accept: "text/event-stream",
      "user-agent": USER_AGENT,
    };
    if (this.last !== undefined) headers["last-event-id"] = this.last;
    // A stream (or an origin that never answers) silent for too long is taken for dead.
    const silence = new AbortController();
    const both = AbortSignal.any([signal, silence.signal]);
    let timer = setTimeout(() => silence.abort(), STREAM_SILENCE_MS);
    const url = this.transport.url("/v1/events/stream");
    let response: Response;
    try {
      response = await this.transport.fetch(url, { headers, signal: both, redirect: "manual" });
    } catch (error) {
      clearTimeout(timer);
      if (signal.aborted) return { kind: "ended" };
      const why = silence.signal.aborted ? `no answer within ${STREAM_SILENCE_MS / 1000} s` : reasonOf(error);
      return { kind: "retry", error: new VouchError("unreachable", `cannot open the event stream: ${why}`, { cause: error }), retryAfterMs: undefined };
    }
    if (response.status !== 200 || response.body === null) {
      clearTimeout(timer);
      const text = await response.text();
      const retryAfterMs = parseRetryAfter(response.headers.get("retry-after"));
      const error = errorFromAnswer(response.status, text, retryAfterMs);
      if (response.status === 400 && this.last !== undefined) {
        // The origin does not know the id resumed from (its database was replaced): start from now.
        this.last = undefined;
        return { kind: "retry", error, retryAfterMs: 0 };
      }
      if (retryableStatus(response.status)) return { kind: "retry", error, retryAfterMs };
      return { kind: "fatal", error };
    }
    const parser = new SseParser();
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
        clearTimeout(timer);
        timer = setTimeout(() => silence.abort(), STREAM_SILENCE_MS);
        for (const message of parser.push(decoder.decode(chunk, { stream: true }))) {
          if (message.id !== undefined) this.last = message.id;
          if (message.event === "stream.opened") {
            this.opened?.resolve();
            continue;
          }
          let event: VouchEvent;
          try {
            event = JSON.parse(message.data) as VouchEvent;
          } catch (cause) {
            this.report(new VouchError("protocol", `a stream event is not JSON: ${reasonOf(cause)}`, { cause }));
            continue;
          }
          await this.serially(() => this.dispatch(event));
        }
      }
    } catch (error) {
      if (signal.aborted) return { kind: "ended" };
      const why = silence.signal.aborted ? `silent for ${STREAM_SILENCE_MS / 1000} s` : reasonOf(error);
      return { kind: "retry", error: new VouchError("unreachable", `the event stream broke off: ${why}`, { cause: error }), retryAfterMs: undefined };
    } finally {
      clearTimeout(timer);
    }
    return { kind: "ended" };
  }

  private async dispatch(event: VouchEvent): Promise<void> {
    if (this.options.onEvent) await this.options.onEvent(event);
    const data = event.data ?? {};
    if (event.type === "agent.tokens_revoked") this.forgetTokens();
    if (event.type !== "passport.status_changed" || data.agent_id !== this.agentId) return;
    const status = data.new_status as AgentStatus;
    const reason = typeof data.reason === "string" ? data.reason : null;
    const version = typeof data.version === "number" ? data.version : undefined;
    await this.observe(status, "stream", event, reason, version);
  }

  /** Records `status`; a change calls its callback. */
  private async observe(
    status: AgentStatus,
    via: LifecycleChange["via"],
    event: VouchEvent | undefined,
    reason: string | null = null,
    version?: number,
  ): Promise<void> {
    const previous = this.known;
    if (previous === status) return;
    this.known = status;
    if (status !== "active") this.forgetTokens();
    // The first status a heartbeat reports is news only when the agent cannot work.
    if (previous === undefined && status === "active" && via === "heartbeat") return;
    const change: LifecycleChange = { status, previousStatus: previous, reason, version, via, event };
    const callback =
      status === "suspended" ? this.options.onSuspended : status === "active" ? this.options.onActivated : status === "revoked" ? this.options.onRevoked : undefined;
    if (callback) await callback(change);
  }
}

