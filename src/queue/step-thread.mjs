// Entry of a step worker thread: register tsx (threads do not inherit the main thread's loader), then run the body.
import { register } from 'tsx/esm/api';

register();
await import('./step-thread-main.ts');
