/** What went wrong with a call to Vouch, or with something Vouch sent. */
export class VouchError extends Error {
  /** The HTTP status of the answer; `undefined` when no answer came. */
  readonly status: number | undefined;
  /**
   * The server's `error` code (`agent_not_found`, `rate_limited`, `invalid_client`…), or one of
   * this library's own: `unreachable` (no answer), `protocol` (an answer this library cannot
   * read), `config` (a bad argument), `invalid_webhook` (a webhook that does not verify),
   * `token_invalid` (an offline token check that failed; see {@link OfflineError}).
   */
  readonly code: string;
  /** The request field at fault, when the server names one. */
  readonly field: string | undefined;
  /** The answer's body, parsed when it was JSON. */
  readonly body: unknown;
  /** The server's `retry-after`, in milliseconds, when it sent one. */
  readonly retryAfterMs: number | undefined;

  constructor(
    code: string,
    message: string,
    extra: { status?: number; field?: string; body?: unknown; retryAfterMs?: number; cause?: unknown } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = "VouchError";
    this.code = code;
    this.status = extra.status;
    this.field = extra.field;
    this.body = extra.body;
    this.retryAfterMs = extra.retryAfterMs;
  }
}

/** The error of an answer that was not a success: the API's `{ error, message, field? }` or OAuth's `{ error, error_description }`. */
export function errorFromAnswer(status: number, text: string, retryAfterMs?: number): VouchError {
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: kept as text
  }
  const record = typeof body === "object" && body !== null ? (body as Record<string, unknown>) : {};
  const code = typeof record.error === "string" ? record.error : `http_${status}`;
  const message =
    typeof record.message === "string"
      ? record.message
      : typeof record.error_description === "string"
        ? record.error_description
        : `the server answered ${status}`;
  const field = typeof record.field === "string" ? record.field : undefined;
  return new VouchError(code, message, {
    status,
    body,
    ...(field === undefined ? {} : { field }),
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  });
}
