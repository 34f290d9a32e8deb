/** The stack stays up (it is idempotent and reused by the next run and by the demo); nothing to tear down. */
export default async function globalTeardown(): Promise<void> {}
