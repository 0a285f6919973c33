// The floor: the least a hibernating Durable Object can do for an airport. It accepts every
// WebSocket with the hibernation API, sends one INITIAL-like packet (so a connect can be timed
// the same way as the real service's INITIAL_STATE), and forwards each frame unchanged to every
// other socket. No keys, no state, no storage, no rate limit. The benchmark reports every figure
// of the service as a ratio to this.
export default {
  fetch(request, env) {
    const airport = new URL(request.url).searchParams.get("airport") ?? "";
    return env.FLOOR.get(env.FLOOR.idFromName(airport.toUpperCase())).fetch(request);
  },
};

export class FloorObject {
  constructor(ctx) {
    this.ctx = ctx;
    // One line per construction, so the benchmark can tell that the object hibernated.
    console.log('{"event":"floor_constructed"}');
  }
  fetch() {
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server);
    server.send('{"type":"INITIAL_STATE","data":{}}');
    return new Response(null, { status: 101, webSocket: client });
  }
  webSocketMessage(ws, message) {
    for (const other of this.ctx.getWebSockets()) if (other !== ws) other.send(message);
  }
  webSocketClose(ws) {
    ws.close();
  }
}
