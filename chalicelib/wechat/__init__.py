"""WeChat's server APIs: the clients that call them and what this service keeps of them.

- `client`: the HTTP client of WeChat's API (`jscode2session`, `stable_token`,
  `getuserphonenumber`), wrapped like a careful SDK.
- `broker`: the app's server access_token, one per appid for every container, in DynamoDB
  (a lease for the fetch, refresh ahead of expiry, bounded forced refreshes).
- `breaker`: a short circuit breaker on `jscode2session` shared by every container, opened by
  WeChat's 45011 and -1 so that an outage is not amplified by retries.
"""
