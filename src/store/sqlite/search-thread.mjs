// Entry of a search thread from the sources: register tsx (threads do not inherit the main thread's loader), then
// run the body.
import { register } from 'tsx/esm/api';

register();
await import('./search-thread-main.ts');
