// ES module entry: the same implementation as index.js (CommonJS), re-exported.
import wxauth from './index.js';

export const {
  createAuthClient,
  AuthClient,
  WxAuthError,
  wxAdapter,
  uniAdapter,
  taroAdapter,
  fromPlatform,
  STORAGE_VERSION,
  DEFAULT_STORAGE_KEY,
} = wxauth;

export default wxauth;
