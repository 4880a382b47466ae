/** Places and pays `count` orders over the orders service's HTTP API, `concurrency` at a time. */
export async function placeAndPayOrders(baseUrl: string, count: number, concurrency = 20): Promise<string[]> {
  const ids: string[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        const placed = await post<{ id: string }>(`${baseUrl}/orders`, {
          customerId: `customer-${i % 25}`,
          totalCents: 1000 + i,
        });
        await post(`${baseUrl}/orders/${placed.id}/pay`);
        ids[i] = placed.id;
      }
    }),
  );
  return ids;
}

async function post<T = unknown>(url: string, body?: unknown): Promise<T> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body ?? {}),
  });
  if (!response.ok) throw new Error(`POST ${url} answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as T;
}
