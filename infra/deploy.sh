#!/usr/bin/env bash
# Deploy wxauth to AWS with the standard AWS CLI (`make deploy` runs this).
#
#   AWS_REGION=ap-southeast-1 WECHAT_APPID=wx0123456789abcdef make deploy
#   AWS_REGION=cn-northwest-1 WECHAT_APPID=wx0123456789abcdef make deploy   (AWS China: an
#       account of the aws-cn partition, see docs/operators.md "Deploy in AWS China")
#
# 1. builds build/infra/sam.yaml and deployment.zip (infra/build.py, which checks the zip);
# 2. uploads them with `aws cloudformation package` to an S3 bucket;
# 3. creates or updates the stack with `aws cloudformation deploy` (the token issuer is the
#    custom domain's URL, WXAUTH_DOMAIN_NAME, else the HTTP API's own: set in the same deploy);
# 4. creates the JWT signing key set if its secret is empty, and puts the WeChat AppSecret if
#    its secret is empty: prompted on a terminal, else read from stdin (`make deploy < file`);
#    with neither, it fails at the end and names the command that sets it.
#
# Environment (unset parameters keep the stack's current value, or the template default):
#   AWS_REGION or AWS_DEFAULT_REGION  region (required); credentials as for any AWS CLI call
#   WXAUTH_STACK_NAME                 stack name (default: wxauth)
#   WXAUTH_ARTIFACT_BUCKET            S3 bucket for the uploads (default: wxauth-artifacts-
#                                     <account>-<region>, created private if missing)
#   WECHAT_APPID                      -> WeChatAppId (required on the first deploy)
#   WECHAT_API_BASE                   -> WeChatApiBase (one of WeChat's access points:
#                                     https://{api,api2,sh.api,sz.api,hk.api}.weixin.qq.com)
#   WXAUTH_DOMAIN_NAME                -> DomainName (custom domain, the issuer; with:)
#   WXAUTH_CERTIFICATE_ARN            -> CertificateArn (ACM, the stack's region)
#   AUTH_AUDIENCE                     -> Audience
#   AUTH_ACCESS_TTL                   -> AccessTokenTtl
#   AUTH_REFRESH_IDLE_TTL             -> RefreshIdleTtl
#   AUTH_REFRESH_ABSOLUTE_TTL         -> RefreshAbsoluteTtl
#   AUTH_REFRESH_GRACE                -> RefreshGrace
#   WXAUTH_APP_SECRET_ARNS            -> AppSecretArns (the added apps' secrets, comma-separated)
#   WXAUTH_COMPONENT_APPID            -> ComponentAppId (a third-party platform's appid; with:)
#   WXAUTH_COMPONENT_SECRET_ARN       -> ComponentSecretArn (its JSON secret: put-secrets.sh
#                                     component-secret fills it)
#   AUTH_LIMIT_LOGIN_PER_IP           -> LoginLimitPerIp (<count>/<seconds>)
#   AUTH_LIMIT_LOGIN_PER_IPV6_48      -> LoginLimitPerIpv6Prefix48 (an IPv6 login's /48)
#   AUTH_LIMIT_LOGIN_PER_OPENID       -> LoginLimitPerOpenid
#   WXAUTH_ORIGIN_SECRET_HEADER       -> OriginSecretHeader (behind CloudFront; with:)
#   WXAUTH_ORIGIN_SECRET_ARN          -> OriginSecretArn (the secret CloudFront sends in it)
#   WXAUTH_DISABLE_EXECUTE_API        -> DisableExecuteApiEndpoint (true: the domain only)
#   AUTH_LIMIT_REFRESH_PER_SESSION    -> RefreshLimitPerSession
#   AUTH_TOKEN_HOOK_ARN               -> TokenHookArn (a Lambda function ARN: the pre-token hook)
#   AUTH_TOKEN_HOOK_TIMEOUT_MS        -> TokenHookTimeoutMs
#   AUTH_TOKEN_HOOK_ON_ERROR          -> TokenHookOnError (issue|refuse)
#   AUTH_MAX_SESSIONS_PER_USER        -> MaxSessionsPerUser (1 to 1000; empty: no cap)
#   AUTH_MAX_SESSIONS_SCOPE           -> MaxSessionsScope (user|app)
#   WXAUTH_THROTTLE_RATE              -> ThrottlingRateLimit
#   WXAUTH_THROTTLE_BURST             -> ThrottlingBurstLimit
#   WXAUTH_LOGIN_THROTTLE_RATE        -> LoginThrottlingRateLimit
#   WXAUTH_LOGIN_THROTTLE_BURST       -> LoginThrottlingBurstLimit
#   WXAUTH_TOKEN_THROTTLE_RATE        -> TokenThrottlingRateLimit
#   WXAUTH_TOKEN_THROTTLE_BURST       -> TokenThrottlingBurstLimit
#   WXAUTH_WECHAT_TOKEN_THROTTLE_RATE -> WeChatTokenThrottlingRateLimit
#   WXAUTH_WECHAT_TOKEN_THROTTLE_BURST -> WeChatTokenThrottlingBurstLimit
#   WXAUTH_FIXED_EGRESS_IP            -> FixedEgressIp (true: VPC + NAT gateway + Elastic IP)
#   WXAUTH_EGRESS_VPC_CIDR            -> EgressVpcCidr (a /16)
#   WXAUTH_FORCE_REFRESH_ALARM        -> WeChatForceRefreshAlarmThreshold
#   WXAUTH_RESERVED_CONCURRENCY       -> ReservedConcurrency (0: none)
#   WXAUTH_LOGIN_RESERVED_CONCURRENCY -> LoginReservedConcurrency (the login function; 0: none)
#   WXAUTH_LAUNCH_CONCURRENCY_LOGIN   -> LaunchConcurrencyLogin (provisioned in the window)
#   WXAUTH_LAUNCH_CONCURRENCY_API     -> LaunchConcurrencyApi
#   WXAUTH_LAUNCH_WINDOW_START        -> LaunchWindowStart (at(yyyy-mm-ddThh:mm:ss), UTC)
#   WXAUTH_LAUNCH_WINDOW_END          -> LaunchWindowEnd
#   WXAUTH_TABLE_WARM_READ_UNITS      -> TableWarmReadUnits (with the next; 0: not pre-warmed)
#   WXAUTH_TABLE_WARM_WRITE_UNITS     -> TableWarmWriteUnits
#   WXAUTH_DEPLOYMENT_PREFERENCE      -> DeploymentPreferenceType (e.g. AllAtOnce)
#   WXAUTH_TRACING                    -> Tracing (PassThrough|Active)
#   WXAUTH_SNAPSTART                  -> SnapStart (On|Off)
#   WXAUTH_DETAILED_ROUTE_METRICS     -> DetailedRouteMetrics (true|false)
#   WXAUTH_LOG_RETENTION_DAYS         -> LogRetentionDays
#   WXAUTH_5XX_RATE_THRESHOLD         -> Api5xxRateThreshold
#   WXAUTH_P99_THRESHOLD_MS           -> LatencyP99ThresholdMs
#   WXAUTH_LOGIN_FAILURE_THRESHOLD    -> LoginFailureRateThreshold
#   WXAUTH_CONCURRENCY_ALARM_PERCENT  -> ConcurrencyAlarmPercent
#   WXAUTH_ALARM_EMAIL                -> AlarmEmail
#   AUTH_EVENT_BUS                    -> EventBusName (auth events to that EventBridge bus)
#   WXAUTH_BUILD_DIR                  where to build (default: build/infra)
#   WXAUTH_SKIP_BUILD=1               deploy WXAUTH_BUILD_DIR as it is (already built)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${WXAUTH_BUILD_DIR:-$ROOT/build/infra}"
STACK="${WXAUTH_STACK_NAME:-wxauth}"
REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"

die() { echo "infra/deploy.sh: $*" >&2; exit 1; }

[[ -n "$REGION" ]] || die "set AWS_REGION (or AWS_DEFAULT_REGION) to the region to deploy to"
command -v aws >/dev/null || die "the AWS CLI (aws) is not on PATH"
export AWS_REGION="$REGION" AWS_DEFAULT_REGION="$REGION"

# Template parameter <- environment variable.
PARAMETERS=(
  WeChatAppId=WECHAT_APPID
  WeChatApiBase=WECHAT_API_BASE
  DomainName=WXAUTH_DOMAIN_NAME
  CertificateArn=WXAUTH_CERTIFICATE_ARN
  Audience=AUTH_AUDIENCE
  AccessTokenTtl=AUTH_ACCESS_TTL
  RefreshIdleTtl=AUTH_REFRESH_IDLE_TTL
  RefreshAbsoluteTtl=AUTH_REFRESH_ABSOLUTE_TTL
  RefreshGrace=AUTH_REFRESH_GRACE
  AppSecretArns=WXAUTH_APP_SECRET_ARNS
  ComponentAppId=WXAUTH_COMPONENT_APPID
  ComponentSecretArn=WXAUTH_COMPONENT_SECRET_ARN
  LoginLimitPerIp=AUTH_LIMIT_LOGIN_PER_IP
  LoginLimitPerIpv6Prefix48=AUTH_LIMIT_LOGIN_PER_IPV6_48
  LoginLimitPerOpenid=AUTH_LIMIT_LOGIN_PER_OPENID
  OriginSecretHeader=WXAUTH_ORIGIN_SECRET_HEADER
  OriginSecretArn=WXAUTH_ORIGIN_SECRET_ARN
  DisableExecuteApiEndpoint=WXAUTH_DISABLE_EXECUTE_API
  RefreshLimitPerSession=AUTH_LIMIT_REFRESH_PER_SESSION
  TokenHookArn=AUTH_TOKEN_HOOK_ARN
  TokenHookTimeoutMs=AUTH_TOKEN_HOOK_TIMEOUT_MS
  TokenHookOnError=AUTH_TOKEN_HOOK_ON_ERROR
  MaxSessionsPerUser=AUTH_MAX_SESSIONS_PER_USER
  MaxSessionsScope=AUTH_MAX_SESSIONS_SCOPE
  ThrottlingRateLimit=WXAUTH_THROTTLE_RATE
  ThrottlingBurstLimit=WXAUTH_THROTTLE_BURST
  LoginThrottlingRateLimit=WXAUTH_LOGIN_THROTTLE_RATE
  LoginThrottlingBurstLimit=WXAUTH_LOGIN_THROTTLE_BURST
  TokenThrottlingRateLimit=WXAUTH_TOKEN_THROTTLE_RATE
  TokenThrottlingBurstLimit=WXAUTH_TOKEN_THROTTLE_BURST
  WeChatTokenThrottlingRateLimit=WXAUTH_WECHAT_TOKEN_THROTTLE_RATE
  WeChatTokenThrottlingBurstLimit=WXAUTH_WECHAT_TOKEN_THROTTLE_BURST
  FixedEgressIp=WXAUTH_FIXED_EGRESS_IP
  EgressVpcCidr=WXAUTH_EGRESS_VPC_CIDR
  WeChatForceRefreshAlarmThreshold=WXAUTH_FORCE_REFRESH_ALARM
  ReservedConcurrency=WXAUTH_RESERVED_CONCURRENCY
  LoginReservedConcurrency=WXAUTH_LOGIN_RESERVED_CONCURRENCY
  LaunchConcurrencyLogin=WXAUTH_LAUNCH_CONCURRENCY_LOGIN
  LaunchConcurrencyApi=WXAUTH_LAUNCH_CONCURRENCY_API
  LaunchWindowStart=WXAUTH_LAUNCH_WINDOW_START
  LaunchWindowEnd=WXAUTH_LAUNCH_WINDOW_END
  TableWarmReadUnits=WXAUTH_TABLE_WARM_READ_UNITS
  TableWarmWriteUnits=WXAUTH_TABLE_WARM_WRITE_UNITS
  DeploymentPreferenceType=WXAUTH_DEPLOYMENT_PREFERENCE
  Tracing=WXAUTH_TRACING
  SnapStart=WXAUTH_SNAPSTART
  DetailedRouteMetrics=WXAUTH_DETAILED_ROUTE_METRICS
  LogRetentionDays=WXAUTH_LOG_RETENTION_DAYS
  Api5xxRateThreshold=WXAUTH_5XX_RATE_THRESHOLD
  LatencyP99ThresholdMs=WXAUTH_P99_THRESHOLD_MS
  LoginFailureRateThreshold=WXAUTH_LOGIN_FAILURE_THRESHOLD
  ConcurrencyAlarmPercent=WXAUTH_CONCURRENCY_ALARM_PERCENT
  AlarmEmail=WXAUTH_ALARM_EMAIL
  EventBusName=AUTH_EVENT_BUS
)

# Variables of earlier versions whose parameter is gone: say so rather than ignore them.
[[ -z "${AUTH_ISSUER:-}" ]] || die "AUTH_ISSUER is no longer a parameter: the issuer is
https://<WXAUTH_DOMAIN_NAME> (with WXAUTH_CERTIFICATE_ARN), else the HTTP API's own URL"
for gone in WXAUTH_STAGE WXAUTH_MANAGE_APIGW_ACCOUNT; do
  [[ -z "${!gone:-}" ]] || die "$gone is no longer a parameter (the HTTP API has one \$default
stage and needs no API Gateway account logging role); unset it"
done

# WECHAT_API_BASE also points the local server at a fake WeChat: refuse anything but WeChat's
# access points here, before building, rather than let CloudFormation refuse it at the end.
case "${WECHAT_API_BASE:-}" in
  "" | https://api.weixin.qq.com | https://api2.weixin.qq.com | https://sh.api.weixin.qq.com \
    | https://sz.api.weixin.qq.com | https://hk.api.weixin.qq.com) ;;
  *) die "WECHAT_API_BASE=$WECHAT_API_BASE is not one of WeChat's access points:
https://api.weixin.qq.com (nearest), https://api2.weixin.qq.com (its disaster-recovery twin),
https://sh.api.weixin.qq.com, https://sz.api.weixin.qq.com, https://hk.api.weixin.qq.com
(unset it to keep the stack's value)" ;;
esac

# AWS China (cn-north-1 Beijing, cn-northwest-1 Ningxia: the aws-cn partition).
china=false
if [[ "$REGION" == cn-* ]]; then
  china=true
  [[ "${WXAUTH_TRACING:-}" != Active ]] || die "WXAUTH_TRACING=Active: X-Ray integration with \
Lambda is not available in the China regions; leave it unset (PassThrough)"
  [[ "${WXAUTH_SNAPSTART:-}" != On ]] || die "WXAUTH_SNAPSTART=On: Lambda SnapStart for Python \
is not available in the China regions; leave it unset (Off)"
fi

stack_query() {  # stack_query JMESPATH: prints the answer, nothing if the stack does not exist
  aws cloudformation describe-stacks --stack-name "$STACK" --query "$1" --output text \
    2>/dev/null || true
}

output() { stack_query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue | [0]"; }

overrides=()
for pair in "${PARAMETERS[@]}"; do
  name="${pair%%=*}" var="${pair#*=}"
  if [[ -n "${!var:-}" ]]; then overrides+=("$name=${!var}"); fi
done

status="$(stack_query 'Stacks[0].StackStatus')"
case "$status" in
  "" | None)
    [[ -n "${WECHAT_APPID:-}" ]] || die "first deploy of stack $STACK: set WECHAT_APPID" ;;
  ROLLBACK_COMPLETE)
    die "stack $STACK failed to create and must be deleted first:
  aws cloudformation delete-stack --stack-name $STACK
(its DynamoDB table is retained: delete it by hand if it is empty)" ;;
  *_IN_PROGRESS) die "stack $STACK is busy ($status); try again when it is done" ;;
esac

if [[ "${WXAUTH_SKIP_BUILD:-}" != 1 ]]; then
  make -C "$ROOT" --no-print-directory package INFRA_OUT="$OUT" </dev/null
fi
[[ -f "$OUT/sam.yaml" && -f "$OUT/deployment.zip" ]] || die "no build in $OUT (make package)"

account="$(aws sts get-caller-identity --query Account --output text)"
bucket="${WXAUTH_ARTIFACT_BUCKET:-wxauth-artifacts-$account-$REGION}"
# --expected-bucket-owner: never upload into a same-named bucket of another account.
if ! aws s3api head-bucket --bucket "$bucket" --expected-bucket-owner "$account" 2>/dev/null; then
  [[ -z "${WXAUTH_ARTIFACT_BUCKET:-}" ]] \
    || die "bucket $bucket does not exist or is not owned by account $account"
  echo "creating artifact bucket s3://$bucket"
  if [[ "$REGION" == us-east-1 ]]; then
    aws s3api create-bucket --bucket "$bucket" >/dev/null
  else
    aws s3api create-bucket --bucket "$bucket" \
      --create-bucket-configuration "LocationConstraint=$REGION" >/dev/null
  fi
  aws s3api put-public-access-block --bucket "$bucket" --public-access-block-configuration \
    BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
fi

aws cloudformation package \
  --template-file "$OUT/sam.yaml" \
  --s3-bucket "$bucket" --s3-prefix "$STACK" \
  --output-template-file "$OUT/packaged.yaml" >/dev/null

deploy() {  # deploy [Key=Value ...]
  local args=(
    --template-file "$OUT/packaged.yaml"
    --stack-name "$STACK"
    --s3-bucket "$bucket" --s3-prefix "$STACK"
    --capabilities CAPABILITY_IAM CAPABILITY_NAMED_IAM CAPABILITY_AUTO_EXPAND
    --no-fail-on-empty-changeset
    --tags app=wxauth
  )
  if (($# > 0)); then args+=(--parameter-overrides "$@"); fi
  aws cloudformation deploy "${args[@]}"
}

echo "deploying stack $STACK in $REGION"
# ${a[@]+"${a[@]}"}: an empty array under `set -u` in the bash 3.2 of macOS.
deploy ${overrides[@]+"${overrides[@]}"}

api_url="$(output ApiUrl)"
[[ -n "$api_url" && "$api_url" != None ]] || die "stack $STACK has no ApiUrl output"

"$ROOT/infra/put-secrets.sh" ensure

domain_target="$(output CustomDomainTarget)"
if [[ -n "$domain_target" && "$domain_target" != None ]]; then
  echo "DNS: point ${api_url#https://} (CNAME) at $domain_target; until then the API answers at $(output HttpApiEndpoint)"
fi
cat <<EOF

wxauth is deployed: stack $STACK, region $REGION
  API:       $api_url  (the token issuer)
  alarms:    $(output AlarmTopicArn)  (subscribe on-call, or set WXAUTH_ALARM_EMAIL)
  dashboard: $(output DashboardName)
Check it:
  curl -s $api_url/.well-known/openid-configuration
  curl -s $api_url/.well-known/jwks.json
EOF
if [[ "$china" == true ]]; then
  cat <<EOF
AWS China: API Gateway answers unauthenticated requests (all of wxauth's routes) only for an
account linked to an ICP licence (备案), and every custom domain needs one: until then those
curls get 403. See docs/operators.md, "Deploy in AWS China".
EOF
fi
