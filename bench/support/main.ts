/** Runs a benchmark's main() as the process's entry point: exit 0 on success, 1 on failure. */
export function runBenchmark(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}

/** Runs `work`, then `cleanup` whatever happened (cleanup errors are reported, not thrown over). */
export async function withCleanup<T>(
  work: () => Promise<T>,
  cleanup: () => Promise<unknown>,
): Promise<T> {
  try {
    return await work();
  } finally {
    await cleanup().catch((error: unknown) => console.error('cleanup failed:', error));
  }
}
