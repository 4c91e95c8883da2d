// Server-Sent Events, read as the WHATWG HTML standard says: fields per line, comments start
// with `:`, a blank line ends an event, several `data:` lines join with "\n".

export interface SseEvent {
  id: string | undefined;
  event: string;
  data: string;
}

/** Reads lines and yields the events they end. */
export class SseParser {
  private event = "";
  private data: string[] = [];
  private id: string | undefined;
  private hasFields = false;
  private rest = "";

  /** The events completed by `chunk` (text as it arrives; lines may be split across chunks). */
  push(chunk: string): SseEvent[] {
    const done: SseEvent[] = [];
    let text = this.rest + chunk;
    // A "\r" at the end may be the first half of "\r\n": hold it back until more arrives.
    const hold = text.endsWith("\r") ? "\r" : "";
    if (hold) text = text.slice(0, -1);
    const lines = text.split(/\r\n|\r|\n/);
    // The last piece has no line end yet ("" when the text ended with one).
    this.rest = (lines.pop() ?? "") + hold;
    for (const line of lines) {
      const event = this.line(line);
      if (event !== undefined) done.push(event);
    }
    return done;
  }

  private line(line: string): SseEvent | undefined {
    if (line === "") {
      if (!this.hasFields) return undefined;
      const event: SseEvent = { id: this.id, event: this.event || "message", data: this.data.join("\n") };
      this.event = "";
      this.data = [];
      this.hasFields = false;
      return event;
    }
    if (line.startsWith(":")) return undefined;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "id":
        // The last event id persists across events until a new one is sent.
        if (!value.includes("\0")) this.id = value;
        break;
      case "event":
        this.event = value;
        break;
      case "data":
        this.data.push(value);
        break;
      default:
        return undefined;
    }
    this.hasFields = true;
    return undefined;
  }
}
