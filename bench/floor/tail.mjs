// A tail worker for the idle-cost scenario: workerd hands it one trace item per invocation of
// the service's Worker and Durable Object (fetch, alarm, WebSocket message/close, ...). It prints
// one JSON line per item with the invocation's own start time and whether the object was
// constructed during it (the service logs `airport_loaded` when a fresh instance first loads its
// airport), so that bench/serve.mjs can count them.
export default {
  tail(events) {
    for (const item of events) {
      const event = item.event ?? {};
      let kind = "other";
      if ("scheduledTime" in event && !("cron" in event)) kind = "alarm";
      else if ("request" in event) kind = "fetch";
      else if ("getWebSocketEvent" in event) kind = `ws_${event.getWebSocketEvent.webSocketEventType}`;
      else if ("webSocketEventType" in event) kind = `ws_${event.webSocketEventType}`;
      const constructed = (item.logs ?? []).some((log) => JSON.stringify(log.message).includes("airport_loaded"));
      console.log(
        JSON.stringify({ event: "tail", kind, at: item.eventTimestamp, outcome: item.outcome, constructed, entrypoint: item.entrypoint ?? null }),
      );
    }
  },
};
