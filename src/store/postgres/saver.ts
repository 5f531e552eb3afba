/**
 * LangGraph's PostgreSQL checkpointer, with every call tried again when its connection is lost (see retry.ts): a
 * checkpoint written by a run is an upsert keyed by its id, pending writes are upserts or inserts that skip a
 * conflict, and deleting a thread twice deletes it once, so a repeated call changes nothing.
 */
import type { RunnableConfig } from '@langchain/core/runnables';
import type { Checkpoint, CheckpointMetadata, ChannelVersions, PendingWrite } from '@langchain/langgraph-checkpoint';
import { PostgresSaver } from '@langchain/langgraph-checkpoint-postgres';
import { retryOnConnectionLoss } from './retry.js';

export class RetryingPostgresSaver extends PostgresSaver {
  override getTuple(config: RunnableConfig): ReturnType<PostgresSaver['getTuple']> {
    return retryOnConnectionLoss(() => super.getTuple(config));
  }

  override put(
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    newVersions: ChannelVersions,
  ): Promise<RunnableConfig> {
    return retryOnConnectionLoss(() => super.put(config, checkpoint, metadata, newVersions));
  }

  override putWrites(config: RunnableConfig, writes: PendingWrite[], taskId: string): Promise<void> {
    return retryOnConnectionLoss(() => super.putWrites(config, writes, taskId));
  }

  override deleteThread(threadId: string): Promise<void> {
    return retryOnConnectionLoss(() => super.deleteThread(threadId));
  }
}
