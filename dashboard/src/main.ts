// The dashboard's entry: / is the directory of live airports, /airport/ICAO one airport.
import { airportPage } from "./airport";
import { directoryPage } from "./directory";
import { canonicalIcao } from "./protocol";
import { RenderStats } from "./stats";

const stats = new RenderStats();
(window as unknown as { dashboardStats: RenderStats }).dashboardStats = stats;

const root = document.getElementById("app")!;
const jump = document.getElementById("jump") as HTMLFormElement;
jump.addEventListener("submit", (event) => {
  event.preventDefault();
  const input = jump.elements.namedItem("icao") as HTMLInputElement;
  const icao = canonicalIcao(input.value);
  if (icao) location.assign(`/airport/${icao}`);
  else input.setCustomValidity("4 letters or digits"), input.reportValidity();
});
(jump.elements.namedItem("icao") as HTMLInputElement).addEventListener("input", (event) =>
  (event.target as HTMLInputElement).setCustomValidity(""),
);

const match = /^\/airport\/([^/]+)\/?$/.exec(location.pathname);
if (match) {
  const icao = canonicalIcao(decodeURIComponent(match[1]));
  if (icao) airportPage(root, icao, stats);
  else root.replaceChildren(Object.assign(document.createElement("p"), { textContent: "An airport code is 4 letters or digits." }));
} else {
  directoryPage(root);
}
