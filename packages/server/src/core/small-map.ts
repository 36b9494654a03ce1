/**
 * A Map by string key for the collections each connection holds and that mostly have one entry (its
 * subscriptions, the cursors of its streams). The single entry lives in two fields; a Map (about 200
 * bytes even with one entry) is made only when a second key is added. Idle memory per connection
 * counts. Entries keep insertion order, as in a Map.
 */
export class SmallMap<V> {
  private key: string | undefined;
  private value: V | undefined;
  private many: Map<string, V> | undefined;

  get size(): number {
    if (this.many !== undefined) return this.many.size;
    return this.key === undefined ? 0 : 1;
  }

  get(key: string): V | undefined {
    if (this.many !== undefined) return this.many.get(key);
    return this.key === key ? this.value : undefined;
  }

  has(key: string): boolean {
    if (this.many !== undefined) return this.many.has(key);
    return this.key === key;
  }

  /** Adds or replaces (a replaced key keeps its place, as with Map.set). */
  set(key: string, value: V): void {
    if (this.many !== undefined) {
      this.many.set(key, value);
    } else if (this.key === undefined || this.key === key) {
      this.key = key;
      this.value = value;
    } else {
      this.many = new Map([
        [this.key, this.value as V],
        [key, value],
      ]);
      this.key = undefined;
      this.value = undefined;
    }
  }

  delete(key: string): boolean {
    if (this.many !== undefined) return this.many.delete(key);
    if (this.key === undefined || this.key !== key) return false;
    this.key = undefined;
    this.value = undefined;
    return true;
  }

  forEach(fn: (value: V, key: string) => void): void {
    if (this.many !== undefined) this.many.forEach(fn);
    else if (this.key !== undefined) fn(this.value as V, this.key);
  }

  /** The values, as a snapshot: safe to iterate while entries are deleted. */
  values(): V[] {
    if (this.many !== undefined) return [...this.many.values()];
    return this.key === undefined ? [] : [this.value as V];
  }
}
