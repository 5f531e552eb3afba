/** The workflow as Mermaid, drawn by LangGraph from the real compiled graph (not a hand-kept copy). */
import { compileGraph } from './graph.js';
import { BUILT_IN_WORKFLOW, type Workflow } from './workflow.js';

export async function toMermaid(workflow: Workflow = BUILT_IN_WORKFLOW): Promise<string> {
  const unused = (): never => {
    throw new Error('the graph is only drawn, never run');
  };
  const graph = compileGraph({
    dispatcher: { run: unused },
    sink: { saveFinished: unused, stepStarted: unused, stepEnded: unused, aiUsed: unused },
    workflow,
  });
  return (await graph.getGraphAsync()).drawMermaid();
}
