/** The workflow as Mermaid, drawn by LangGraph from the real compiled graph (not a hand-kept copy). */
import { compileGraph } from './graph.js';

export async function toMermaid(): Promise<string> {
  const unused = (): never => {
    throw new Error('the graph is only drawn, never run');
  };
  const graph = compileGraph({
    dispatcher: { run: unused },
    sink: { saveFinished: unused, stepStarted: unused, stepEnded: unused, aiUsed: unused },
  });
  return (await graph.getGraphAsync()).drawMermaid();
}
