// RFC 6962 / RFC 9162 Merkle proofs checked in the browser with SubtleCrypto (SHA-256, and Ed25519 for the signed
// tree head where the browser supports it). Independent of the server's Python code: same rules, own implementation.
"use strict";
(function () {
  const subtle = window.crypto && window.crypto.subtle;

  function hexToBytes(hex) {
    if (typeof hex !== "string" || hex.length % 2 || /[^0-9a-fA-F]/.test(hex)) throw new Error("not hex");
    const out = new Uint8Array(hex.length / 2);
    for (let i = 0; i < out.length; i += 1) out[i] = parseInt(hex.substr(i * 2, 2), 16);
    return out;
  }
  function bytesToHex(bytes) {
    return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
  }
  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let offset = 0;
    parts.forEach((p) => { out.set(p, offset); offset += p.length; });
    return out;
  }
  async function sha256(bytes) { return new Uint8Array(await subtle.digest("SHA-256", bytes)); }
  const leafHash = (data) => sha256(concat(new Uint8Array([0]), data));
  const nodeHash = (left, right) => sha256(concat(new Uint8Array([1]), left, right));
  function equal(a, b) { return a.length === b.length && a.every((v, i) => v === b[i]); }

  /** The root implied by an inclusion proof (RFC 9162 §2.1.3.2). Throws on a malformed proof. */
  async function rootFromInclusion(index, size, leaf, path) {
    if (!(index >= 0 && index < size)) throw new Error("leaf index outside the tree");
    let fn = index;
    let sn = size - 1;
    let result = leaf;
    for (const element of path) {
      if (element.length !== 32) throw new Error("proof element is not a SHA-256 hash");
      if (sn === 0) throw new Error("proof longer than the tree is deep");
      if (fn % 2 === 1 || fn === sn) {
        result = await nodeHash(element, result);
        if (fn % 2 === 0) { while (fn !== 0 && fn % 2 === 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); } }
      } else {
        result = await nodeHash(result, element);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    if (sn !== 0) throw new Error("proof shorter than the tree is deep");
    return result;
  }

  /** The bytes a tree head signature covers: version 0, type 1, timestamp (u64), size (u64), root. */
  function treeHeadBytes(treeSize, timestampMs, root) {
    const head = new Uint8Array(18);
    const view = new DataView(head.buffer);
    view.setUint8(0, 0);
    view.setUint8(1, 1);
    view.setBigUint64(2, BigInt(timestampMs));
    view.setBigUint64(10, BigInt(treeSize));
    return concat(head, root);
  }

  /**
   * Verify `proof` = {seq, tree_size, leaf_hash, path, root_hash, signed_head?, leaf_data?} (hex strings).
   * Returns {ok, steps: [{ja, en, ok}], leafOk, rootOk, headOk, signatureOk}. `leaf_data` (hex) or `leafData`
   * (bytes) lets the browser hash the event itself instead of trusting the server's leaf hash.
   */
  async function verifyInclusion(proof, { leafData, publicKeyHex } = {}) {
    const steps = [];
    const report = { ok: false, steps, leafOk: null, rootOk: false, headOk: null, signatureOk: null };
    if (!subtle) { steps.push({ ok: false, ja: "このブラウザーでは検証できません（SubtleCrypto なし）", en: "SubtleCrypto unavailable" }); return report; }
    try {
      let leaf = hexToBytes(proof.leaf_hash);
      const data = leafData || (proof.leaf_data ? hexToBytes(proof.leaf_data) : null);
      if (data) {
        const computed = await leafHash(data);
        report.leafOk = equal(computed, leaf);
        steps.push({ ok: report.leafOk, ja: "記録の内容から葉のハッシュを計算", en: "leaf hash recomputed from the event" });
        leaf = computed;
      }
      const root = await rootFromInclusion(Number(proof.seq), Number(proof.tree_size), leaf, proof.path.map(hexToBytes));
      report.rootOk = equal(root, hexToBytes(proof.root_hash));
      steps.push({ ok: report.rootOk, ja: "経路（" + proof.path.length + "個のハッシュ）から根を計算し一致を確認",
        en: "root recomputed from the " + proof.path.length + "-hash path matches" });
      const head = proof.signed_head;
      if (head) {
        report.headOk = Number(head.tree_size) === Number(proof.tree_size) && equal(hexToBytes(head.root_hash), root);
        steps.push({ ok: report.headOk, ja: "署名付きツリーヘッドの根と一致", en: "matches the signed tree head's root" });
        if (publicKeyHex) {
          try {
            const key = await subtle.importKey("raw", hexToBytes(publicKeyHex), { name: "Ed25519" }, false, ["verify"]);
            report.signatureOk = await subtle.verify({ name: "Ed25519" }, key, hexToBytes(head.signature),
              treeHeadBytes(head.tree_size, head.timestamp_ms, hexToBytes(head.root_hash)));
            steps.push({ ok: report.signatureOk, ja: "ツリーヘッドの Ed25519 署名を検証", en: "Ed25519 signature of the tree head" });
          } catch (e) {
            report.signatureOk = null;
            steps.push({ ok: null, ja: "このブラウザーでは署名を検証できません", en: "Ed25519 not supported here" });
          }
        }
      }
      report.ok = report.rootOk && report.leafOk !== false && report.headOk !== false && report.signatureOk !== false;
    } catch (e) {
      steps.push({ ok: false, ja: "証明の形式が正しくありません: " + e.message, en: "malformed proof: " + e.message });
      report.ok = false;
    }
    return report;
  }

  window.JPKI = Object.assign(window.JPKI || {}, {
    merkle: { verifyInclusion, rootFromInclusion, leafHash, nodeHash, hexToBytes, bytesToHex, treeHeadBytes },
  });
})();
