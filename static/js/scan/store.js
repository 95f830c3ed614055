// What the scanner keeps on the phone. The queue of records waiting to upload is in IndexedDB
// (it survives a closed tab and a restart); the device token and the synced keys, revocations and
// service items, small, in localStorage.

const PREFIX = "homecare-scan.";
const DB_NAME = "homecare-scan";
const QUEUE = "queue";

export function load(name, fallback = null) {
  try {
    const text = localStorage.getItem(PREFIX + name);
    return text === null ? fallback : JSON.parse(text);
  } catch {
    return fallback;
  }
}

export function save(name, value) {
  localStorage.setItem(PREFIX + name, JSON.stringify(value));
}

export function forget(name) {
  localStorage.removeItem(PREFIX + name);
}

let opening = null;

function database() {
  opening =
    opening ||
    new Promise((resolve, reject) => {
      const request = indexedDB.open(DB_NAME, 1);
      request.onupgradeneeded = () => {
        request.result.createObjectStore(QUEUE, { keyPath: "id", autoIncrement: true });
      };
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  return opening;
}

async function withQueue(mode, action) {
  const db = await database();
  return new Promise((resolve, reject) => {
    const transaction = db.transaction(QUEUE, mode);
    const result = action(transaction.objectStore(QUEUE));
    transaction.oncomplete = () => resolve(result && "result" in result ? result.result : undefined);
    transaction.onerror = () => reject(transaction.error);
    transaction.onabort = () => reject(transaction.error);
  });
}

// A new entry; resolves to its id (the queue's order).
export const addEntry = (entry) => withQueue("readwrite", (store) => store.add(entry));
export const putEntry = (entry) => withQueue("readwrite", (store) => store.put(entry));
export const deleteEntry = (id) => withQueue("readwrite", (store) => store.delete(id));
export const clearQueue = () => withQueue("readwrite", (store) => store.clear());
// Every entry, oldest first.
export const allEntries = () => withQueue("readonly", (store) => store.getAll());
