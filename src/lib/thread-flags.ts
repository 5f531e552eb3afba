/** The Node flags a worker thread of ours starts with. */
/**
 * The main thread's Node flags without `--enable-source-maps` (step threads report errors by code and message),
 * without V8 heap sizes (a Worker refuses them: its limits are its resourceLimits), and without a preload that reads
 * the main script's arguments: LangGraph Studio's server (`langgraphjs dev`) starts with `--import …/preload.mjs`,
 * which parses the last command-line argument as JSON, and a thread's last argument is its script's path.
 */
export function threadExecArgv(execArgv: readonly string[] = process.execArgv): string[] {
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const arg = execArgv[i]!;
    if (arg === '--enable-source-maps' || /^--max-(semi|old)-space-size/.test(arg)) continue;
    const [flag, inline] = arg.split(/=(.*)/s, 2) as [string, string | undefined];
    if (flag === '--import' || flag === '--require' || flag === '-r') {
      const value = inline ?? execArgv[i + 1] ?? '';
      if (inline === undefined) i++;
      if (value.includes('@langchain/langgraph-api')) continue;
      out.push(flag, value);
      continue;
    }
    out.push(arg);
  }
  return out;
}
