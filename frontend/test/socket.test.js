import { test } from "node:test";
import assert from "node:assert/strict";
import { webcrypto } from "node:crypto";
import { tabClientId } from "../socket.js";

function memoryStorage() {
  const items = new Map();
  return { getItem: (k) => items.get(k) ?? null, setItem: (k, v) => items.set(k, String(v)) };
}

test("a tab keeps one 128-bit client id across reloads, and another tab gets its own", () => {
  const tab = memoryStorage();
  const first = tabClientId(tab, webcrypto);
  assert.match(first, /^[0-9a-f]{32}$/);
  assert.equal(tabClientId(tab, webcrypto), first, "a reload (same sessionStorage) keeps the id");
  assert.notEqual(tabClientId(memoryStorage(), webcrypto), first, "another tab has another id");
});

test("a tampered stored id is replaced, and blocked storage still yields an id", () => {
  const tab = memoryStorage();
  tab.setItem("img2img-studio-client-id", "../../x");
  assert.match(tabClientId(tab, webcrypto), /^[0-9a-f]{32}$/);
  const blocked = { getItem() { throw new Error("denied"); }, setItem() { throw new Error("denied"); } };
  assert.match(tabClientId(blocked, webcrypto), /^[0-9a-f]{32}$/);
});
