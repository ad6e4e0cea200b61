// Server-Sent Events from a fetch response (EventSource cannot POST): events are blocks of
// "field: value" lines separated by a blank line; lines starting with ":" are comments.
// Yields [event, data] with `data` parsed as JSON.
export async function* sseEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = /\r?\n\r?\n/.exec(buffer))) {
        const block = buffer.slice(0, end.index);
        buffer = buffer.slice(end.index + end[0].length);
        let event = "message";
        const data = [];
        for (const line of block.split(/\r?\n/)) {
          const colon = line.indexOf(":");
          if (colon === 0) continue;
          const field = colon < 0 ? line : line.slice(0, colon);
          const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") event = val;
          else if (field === "data") data.push(val);
        }
        if (data.length) yield [event, JSON.parse(data.join("\n"))];
      }
    }
  } finally {
    reader.cancel().catch(() => {});  // the caller stopped reading (after `done`): let go
  }
}
