// Typings of the ES module entry (index.mjs): the same names as index.d.ts (index.js), and
// the default export is the module object itself, as index.mjs exports it.
export * from './index.js';
import * as wxauth from './index.js';
export default wxauth;
