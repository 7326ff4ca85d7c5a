import { Table } from "./server/store.ts";
import { WorkerPs } from "./client/worker_api.ts";
const K = 4000, k = 100, N = 1_000_000;
const tw = Table.create(0, { name: "W", keys: K, dim: k }, K);
const th = Table.create(1, { name: "H", keys: K, dim: k }, K);
const v = new Float32Array(k).fill(0.1);
for (let i = 0; i < K; i++) { tw.insert(i, v, 0); th.insert(i, v, 0); }
const ps = new WorkerPs([tw.shared, th.shared], "lapse", () => {});
const rows = new Uint32Array(N), cols = new Uint32Array(N), vals = new Float32Array(N);
for (let t = 0; t < N; t++) { rows[t] = Math.random() * K; cols[t] = Math.random() * K; vals[t] = 1; }
const Wp = new Float32Array(K * k).fill(0.1), Hp = new Float32Array(K * k).fill(0.1);
function plain() {
  let loss = 0; const lr = 0.01, lambda = 0.01;
  for (let t = 0; t < N; t++) {
    const aw = rows[t] * k, ah = cols[t] * k;
    let dot = 0;
    for (let f = 0; f < k; f++) dot += Wp[aw + f] * Hp[ah + f];
    const err = vals[t] - dot; loss += err * err;
    for (let f = 0; f < k; f++) { const w = Wp[aw + f], h = Hp[ah + f]; Wp[aw + f] = w + lr * (err * h - lambda * w); Hp[ah + f] = h + lr * (err * w - lambda * h); }
  }
  return loss;
}
function viaPs() {
  let loss = 0; const lr = 0.01, lambda = 0.01;
  for (let t = 0; t < N; t++) {
    const i = rows[t], j = cols[t];
    const aw = ps.acquire(0, i); const ah = ps.acquire(1, j);
    const W = ps.values(0), H = ps.values(1);
    let dot = 0;
    for (let f = 0; f < k; f++) dot += W[aw + f] * H[ah + f];
    const err = vals[t] - dot; loss += err * err;
    for (let f = 0; f < k; f++) { const w = W[aw + f], h = H[ah + f]; W[aw + f] = w + lr * (err * h - lambda * w); H[ah + f] = h + lr * (err * w - lambda * h); }
    ps.release(0, i); ps.release(1, j);
  }
  return loss;
}
function viaTable() {
  let loss = 0; const lr = 0.01, lambda = 0.01;
  const W = tw.values, H = th.values, iw = tw.index, ih = th.index, lw = tw.locks, lh = th.locks;
  for (let t = 0; t < N; t++) {
    const i = rows[t], j = cols[t];
    while (Atomics.compareExchange(lw, i, 0, 1) !== 0);
    while (Atomics.compareExchange(lh, j, 0, 1) !== 0);
    const aw = iw[i] * k, ah = ih[j] * k;
    let dot = 0;
    for (let f = 0; f < k; f++) dot += W[aw + f] * H[ah + f];
    const err = vals[t] - dot; loss += err * err;
    for (let f = 0; f < k; f++) { const w = W[aw + f], h = H[ah + f]; W[aw + f] = w + lr * (err * h - lambda * w); H[ah + f] = h + lr * (err * w - lambda * h); }
    Atomics.store(lw, i, 0); Atomics.store(lh, j, 0);
  }
  return loss;
}
function sabNoLock() {
  let loss = 0; const lr = 0.01, lambda = 0.01;
  const W = tw.values, H = th.values, iw = tw.index, ih = th.index;
  for (let t = 0; t < N; t++) {
    const i = rows[t], j = cols[t];
    const aw = iw[i] * k, ah = ih[j] * k;
    let dot = 0;
    for (let f = 0; f < k; f++) dot += W[aw + f] * H[ah + f];
    const err = vals[t] - dot; loss += err * err;
    for (let f = 0; f < k; f++) { const w = W[aw + f], h = H[ah + f]; W[aw + f] = w + lr * (err * h - lambda * w); H[ah + f] = h + lr * (err * w - lambda * h); }
  }
  return loss;
}
for (const [name, fn] of [["plain", plain], ["ps", viaPs], ["table+atomics", viaTable], ["sab nolock", sabNoLock], ["plain", plain], ["ps", viaPs], ["table+atomics", viaTable], ["sab nolock", sabNoLock]] as const) {
  const t0 = performance.now(); fn(); const s = (performance.now() - t0) / 1000;
  console.log(name, (N / s / 1e6).toFixed(2), "M/s");
}
