/** The upstream's answer to every request: ~1 KB of JSON, built once. */
export const PAYLOAD: string = JSON.stringify({
  service: 'bench-upstream',
  items: Array.from({ length: 12 }, (_, i) => ({
    id: i,
    name: `item-${i}`,
    tags: ['alpha', 'beta', 'gamma'],
    price: 10 + i / 4,
    inStock: i % 2 === 0,
  })),
});
