// Typings for the wxauth mini-program client (index.js / index.mjs).

/** The options wx.request, uni.request and Taro.request share (callbacks aside). */
export interface RequestFields {
  url: string;
  method?: string;
  header?: Record<string, string>;
  data?: unknown;
  timeout?: number;
  dataType?: string;
  responseType?: string;
  [option: string]: unknown;
}

/** The callback-style request options the adapter's `request` receives. */
export interface PlatformRequestOptions extends RequestFields {
  success?: (res: PlatformResponse) => void;
  fail?: (err: { errMsg?: string } & Record<string, unknown>) => void;
}

/** What wx.request (uni, Taro) hands to `success`. */
export interface PlatformResponse<T = any> {
  statusCode: number;
  data: T;
  header: Record<string, string>;
  [field: string]: unknown;
}

/** What the client needs of the platform: wx's shape (wx, uni and Taro all have it). */
export interface Adapter {
  request(options: PlatformRequestOptions): unknown;
  login(options: {
    /** Only with the client's `provider` option (uni-app's App side), with onlyAuthorize. */
    provider?: string;
    onlyAuthorize?: boolean;
    success: (res: { code: string }) => void;
    fail: (err: { errMsg?: string }) => void;
  }): unknown;
  getStorageSync(key: string): unknown;
  setStorageSync(key: string, value: string): void;
  removeStorageSync(key: string): void;
  /** Optional: wx.getRandomValues's shape (base library 2.15.0+), the source of each login's
   * `login_nonce` (32 bytes, sent as 64 hex digits, the same on the retry of one code: only
   * the code's first caller gets the server's replay of its session). wxAdapter() passes wx's
   * on when it has one; without it, crypto.getRandomValues where it exists, else Math.random. */
  getRandomValues?(options: {
    length: number;
    success: (res: { randomValues: ArrayBuffer }) => void;
    fail: (err: { errMsg?: string }) => void;
  }): unknown;
}

export type PublicRoute = string | RegExp | ((path: string, method: string) => boolean);

export interface AuthClientOptions {
  /** wxauth's base URL, e.g. 'https://auth.example.com/api'. Required. */
  baseURL: string;
  /** wxAdapter(wx), uniAdapter(uni), taroAdapter(Taro), or your own. Required. */
  adapter: Adapter;
  /** Where relative request() URLs go; default baseURL. Absolute URLs outside baseURL and
   * apiBaseURL never get the token. */
  apiBaseURL?: string;
  /** Seconds before the access token's expiry at which a request refreshes first; default 60. */
  refreshMargin?: number;
  /** Paths (relative to apiBaseURL) sent without a token: '/exact', '/prefix/*', a RegExp, or
   * a function; or one function for all. */
  publicRoutes?: PublicRoute[] | ((path: string, method: string) => boolean);
  /** The one storage key; default 'wxauth.session'. */
  storageKey?: string;
  /** Sent with each login and shown by listSessions(): name <= 64, platform <= 32 characters. */
  device?: { name?: string; platform?: string };
  /** Sent as `appid` with each login (POST /auth/login): needed when the deployment serves
   * several apps; default none (the deployment's one enabled app). */
  appid?: string;
  /** Passed to the adapter's login as {provider, onlyAuthorize: true}: 'weixin' for uni-app's
   * App side (a mobile app's WeChat login); default none (wx.login, uni.login as they are). */
  provider?: string;
  /** The client's clock in milliseconds; default Date.now. */
  now?: () => number;
}

export interface RequestOptions extends RequestFields {
  /** false: send this request without a token (as a public route). */
  auth?: boolean;
}

export interface User {
  id: string;
  is_new: boolean;
  /** Present while the account's deletion is pending (its cooling-off period runs): the
   * session then reaches only GET /me, GET /me/export, DELETE /me/deletion and logout. */
  deletion?: PendingDeletion;
  /** Only from loginWithPhone(): the number the login bound. */
  phone?: PhoneNumber;
}

/** An account's deletion asked for: when, and when it is erased (epoch seconds). */
export interface PendingDeletion {
  requested_at: number;
  erase_after: number;
}

/** A bound phone number, as the server answers it. */
export interface PhoneNumber {
  /** E.164, e.g. '+8613800138000'. */
  phone_number: string;
  country_code: string;
  pure_phone_number: string;
  /** Epoch seconds. */
  bound_at: number;
}

/** One of the user's live sessions, as GET /auth/sessions lists it. */
export interface SessionInfo {
  id: string;
  /** True for the session of the access token that asked. */
  current: boolean;
  created_at: number;
  last_refreshed_at: number | null;
  expires_at: number;
  device: { name: string | null; platform: string | null } | null;
  user_agent: string | null;
  /** The network, not the address: '203.0.113.0/24', '2001:db8:1::/48'. */
  source_ip: string | null;
}

/** What updateProfile() sends: each optional (at least one), null clears it. */
export interface ProfileUpdate {
  /** 1 to 32 characters after NFC and trimming, printable. */
  nickname?: string | null;
  /** https, on a host the server allows (AUTH_AVATAR_URL_HOSTS; WeChat's qlogo hosts by default). */
  avatar_url?: string | null;
}

/** The user as GET /me (and updateProfile()) answers it. */
export interface Me {
  id: string;
  appid: string;
  openid: string;
  unionid: string | null;
  created_at: number;
  nickname: string | null;
  avatar_url: string | null;
  phone: {
    phone_number: string;
    country_code: string;
    pure_phone_number: string;
    bound_at: number;
  } | null;
  identities?: { appid: string; kind: string; openid: string }[];
  [field: string]: unknown;
}

/** WeChat's encrypted data: the success result of wx.getWeRunData, wx.getShareInfo, ... */
export interface EncryptedData {
  encryptedData: string;
  iv: string;
  [field: string]: unknown;
}

/** What decrypt() resolves: WeChat's JSON, with its watermark. */
export interface DecryptedData {
  watermark: { appid: string; timestamp: number };
  [field: string]: unknown;
}

/** A page of GET /auth/sessions. */
export interface SessionsPage {
  sessions: SessionInfo[];
  /** Pass it as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

/** A device login (scan-to-login on a PC, TV or kiosk) as GET /auth/device/{user_code} shows it. */
export interface DeviceLogin {
  /** Shown as WDJB-MJHT. */
  user_code: string;
  /** The client (app or OAuth client) that asks. */
  client_id: string;
  status: 'pending' | 'confirmed' | 'denied' | 'expired';
  /** When the device asked (epoch seconds). */
  created_at: number;
  expires_in: number;
  /** The device's network, not its address: '203.0.113.0/24'. */
  source_ip: string | null;
  user_agent: string | null;
}

/** What confirmDeviceLogin() and denyDeviceLogin() resolve. */
export type DeviceDecision =
  | { ok: true; reason: null; login: DeviceLogin }
  | { ok: false; reason: 'decided' | 'expired' | 'not_found'; login: null };

export type WxAuthErrorCode =
  | 'network_error'
  | 'logged_out'
  | 'session_evicted'
  | 'login_failed'
  | 'refresh_failed'
  | 'temporarily_unavailable'
  | 'invalid_token'
  | 'bad_response'
  /** updateProfile(), decrypt(): the server refused a value (error_description says which). */
  | 'invalid_request'
  /** updateProfile(): WeChat's content security check judged the nickname risky. */
  | 'risky_content'
  /** decrypt(): the session's WeChat session_key is no longer current (wx.login again since
   * this session's login): login(), then get the data from WeChat again. */
  | 'session_key_expired'
  | 'deletion_pending'
  | 'account_deleted'
  | 'deletion_refused';

export class WxAuthError extends Error {
  constructor(
    code: WxAuthErrorCode,
    message: string,
    details?: {
      status?: number;
      serverError?: string;
      retryAfter?: number;
      response?: PlatformResponse;
      cause?: unknown;
    }
  );
  readonly name: 'WxAuthError';
  readonly code: WxAuthErrorCode;
  /** HTTP status of the answer that caused it, if there was one. */
  readonly status: number | null;
  /** The server's `error` field (e.g. 'invalid_grant'), if any. */
  readonly serverError: string | null;
  /** Seconds, from Retry-After (temporarily_unavailable). */
  readonly retryAfter: number | null;
  readonly response: PlatformResponse | null;
  readonly cause?: unknown;
}

export class AuthClient {
  constructor(options: AuthClientOptions);
  /** wx.login then POST /auth/login with a new random `login_nonce` (the same on its one
   * retry); one login in flight however many callers ask. Ends a logged-out state. */
  login(): Promise<User>;
  /** One-tap phone login: wx.login, then POST /auth/login with `phone_code`, the code of the
   * getPhoneNumber / getRealtimePhoneNumber button (`e.detail.code`); the number is bound in
   * the same login. A number of another account rejects login_failed, serverError
   * 'phone_in_use', and makes no session. */
  loginWithPhone(phoneCode: string): Promise<User>;
  /** wx.request with the access token, as a promise: resolves every HTTP answer except a token
   * rejection that a refresh (or login) and one replay could not cure; rejects WxAuthError. */
  request<T = any>(options: RequestOptions): Promise<PlatformResponse<T>>;
  /** Clears the session on the device at once, then tells the server; never rejects.
   * `revoked` is true if the server confirmed. */
  logout(options?: { all?: boolean }): Promise<{ revoked: boolean }>;
  /** A valid access token for wx.uploadFile, wx.downloadFile or wx.connectSocket
   * (`Authorization: Bearer <token>`): refreshes first when it has less than refreshMargin
   * left (one refresh in flight, shared with request()), logs in when there are no tokens;
   * rejects WxAuthError as request() does. */
  getAccessToken(): Promise<string>;
  /** The user's live sessions (GET /auth/sessions, every page of it, at most 100 pages of
   * 100), newest first. */
  listSessions(): Promise<SessionInfo[]>;
  /** One page of the user's live sessions; `nextCursor` null on the last page. Each page is
   * newest first; pages come in the server's order, not by time. */
  listSessionsPage(options?: { limit?: number; cursor?: string | null }): Promise<SessionsPage>;
  /** Ends one of the user's sessions; {ended: false} if it is not a live session of theirs. */
  endSession(sid: string): Promise<{ ended: boolean }>;
  /** A device login by its user code (the mini-program code's `scene`), before the user
   * confirms it; null if no device login has this code. */
  getDeviceLogin(userCode: string): Promise<DeviceLogin | null>;
  /** Lets the device in (one time): its session will be this user's. */
  confirmDeviceLogin(userCode: string): Promise<DeviceDecision>;
  /** Turns the device away (one time): it gets access_denied. */
  denyDeviceLogin(userCode: string): Promise<DeviceDecision>;
  /** Sets or clears the nickname and avatar URL (POST /me: wx.request has no PATCH); resolves
   * the user as GET /me. Rejects 'invalid_request', 'risky_content', ... */
  updateProfile(profile: ProfileUpdate): Promise<Me>;
  /** WeChat's encrypted data decrypted by the server with this session's session_key (never
   * on the device). Rejects 'session_key_expired' (login(), then get the data again),
   * 'invalid_request', ... */
  decrypt<T extends DecryptedData = DecryptedData>(encrypted: EncryptedData): Promise<T>;
  /** Asks for the account's deletion with a fresh wx.login code (else one from wx.login now):
   * every session ends, this client is logged out; resolves when the account is erased. */
  requestDeletion(code?: string): Promise<PendingDeletion>;
  /** Cancels a pending deletion and refreshes: the tokens reach every route again. */
  cancelDeletion(): Promise<{ cancelled: true }>;
  /** Everything the server stores about the user (GET /me/export), as JSON. */
  exportData<T = Record<string, unknown>>(): Promise<T>;
  /** True if tokens are stored (they may still need a refresh). */
  hasSession(): boolean;
  /** True after logout(), or after the server ended this device's session for the cap on
   * sessions per user ('session_evicted'), until the next successful login(). */
  isLoggedOut(): boolean;
  /** The user from the last login, or null. */
  getUser(): User | null;
}

export function createAuthClient(options: AuthClientOptions): AuthClient;

/** An adapter from any object with wx's callback API. */
export function fromPlatform(api: unknown, name?: string): Adapter;
/** Native mini-program: wxAdapter() uses the global `wx`. */
export function wxAdapter(wx?: unknown): Adapter;
/** uni-app: uniAdapter() uses the global `uni`. */
export function uniAdapter(uni?: unknown): Adapter;
/** Taro: taroAdapter(Taro), with `import Taro from '@tarojs/taro'`. */
export function taroAdapter(taro: unknown): Adapter;

export const STORAGE_VERSION: 1;
export const DEFAULT_STORAGE_KEY: 'wxauth.session';

// `import wxauth from '...'` (ESM default, or esModuleInterop) is the module object itself.
