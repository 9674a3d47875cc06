#!/usr/bin/env bash
# Put wxauth's secret values into the Secrets Manager secrets of a deployed stack.
#
#   infra/put-secrets.sh wechat-secret          the WeChat AppSecret, read from stdin
#                                               (prompted without echo on a terminal)
#   infra/put-secrets.sh init-signing-keys      a new JWT signing key set, if none is there
#   infra/put-secrets.sh rotate-signing-key     adds a new active signing key; the old ones
#                                               stay published so their tokens still verify
#   infra/put-secrets.sh component-secret       the third-party platform's JSON secret (the
#                                               stack's ComponentSecretArn) from the environment:
#                                               WECHAT_COMPONENT_SECRET (its appsecret),
#                                               WECHAT_COMPONENT_TOKEN (its message token) and
#                                               WECHAT_COMPONENT_AES_KEY (its EncodingAESKey)
#   infra/put-secrets.sh status                 which secrets hold a value (never the value)
#   infra/put-secrets.sh ensure                 init-signing-keys if empty, wechat-secret if
#                                               empty (prompted, or read from stdin), and
#                                               component-secret if the stack has a platform
#                                               whose secret is empty
#
# Stack and region as for infra/deploy.sh: WXAUTH_STACK_NAME (default wxauth), AWS_REGION or
# AWS_DEFAULT_REGION. Key sets are made by `python -m chalicelib.signing_keys` with the
# project's venv (WXAUTH_PYTHON, default .venv/bin/python; `make install` creates it).
#
# Values travel only through pipes and shell variables: never on a command line (which other
# users can see in `ps`), never in a file, never printed. The function reloads the signing keys
# within 5 minutes, the WeChat and the platform's secrets on their next cold start or cache
# expiry.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK="${WXAUTH_STACK_NAME:-wxauth}"
REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
PYTHON="${WXAUTH_PYTHON:-$ROOT/.venv/bin/python}"

die() { echo "infra/put-secrets.sh: $*" >&2; exit 1; }

[[ -n "$REGION" ]] || die "set AWS_REGION (or AWS_DEFAULT_REGION)"
command -v aws >/dev/null || die "the AWS CLI (aws) is not on PATH"
export AWS_REGION="$REGION" AWS_DEFAULT_REGION="$REGION"

output() {
  local value
  value="$(aws cloudformation describe-stacks --stack-name "$STACK" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue | [0]" --output text)" \
    || die "cannot read stack $STACK in $REGION"
  [[ -n "$value" && "$value" != None ]] || die "stack $STACK has no output $1"
  printf '%s' "$value"
}

parameter() {
  aws cloudformation describe-stacks --stack-name "$STACK" \
    --query "Stacks[0].Parameters[?ParameterKey=='$1'].ParameterValue | [0]" --output text
}

has_value() {  # has_value ARN: true if the secret has a current version (reads no value)
  local description
  description="$(aws secretsmanager describe-secret --secret-id "$1" --output json)" \
    || die "cannot describe secret $1"
  [[ "$description" == *'"AWSCURRENT"'* ]]
}

put_from_stdin() {  # put_from_stdin ARN < value
  aws secretsmanager put-secret-value --secret-id "$1" --secret-string file:///dev/stdin \
    --query VersionId --output text >/dev/null
}

keyset_summary() {  # keyset_summary < keyset JSON: prints active kid and kids, no key material
  "$PYTHON" -c 'import json, sys
s = json.load(sys.stdin)
kids = [k["kid"] for k in s["keys"]]
assert s["active_kid"] in kids and all(k.get("private_key_pem") for k in s["keys"])
print("active kid %s; published kids %s" % (s["active_kid"], " ".join(kids)))'
}

wechat_secret() {
  local arn secret
  arn="$(output WeChatSecretArn)"
  if [[ -t 0 ]]; then
    read -rs -p "WeChat AppSecret of $(parameter WeChatAppId) (input hidden): " secret
    echo >&2
  else
    secret="$(cat)"
  fi
  [[ -n "$secret" ]] || die "the WeChat AppSecret is not set; logins fail until you run
  infra/put-secrets.sh wechat-secret    (paste it at the prompt, or pipe it in)"
  [[ "$secret" =~ ^[[:graph:]]+$ ]] || die "expected the AppSecret on stdin, one word"
  printf '%s' "$secret" | put_from_stdin "$arn"
  echo "WeChat AppSecret stored in $arn"
}

component_arn() {  # the stack's ComponentSecretArn; nothing when it has no platform
  local arn
  arn="$(parameter ComponentSecretArn)" || die "cannot read stack $STACK in $REGION"
  if [[ "$arn" != None ]]; then printf '%s' "$arn"; fi
}

# The JSON {"secret", "token", "encoding_aes_key"} built and checked (as the function checks
# it: chalicelib.setting_values.ComponentKeys) from the environment by Python, so that no value
# is on a command line; errors name the variable, never a value.
component_secret() {
  local arn
  arn="$(component_arn)"
  [[ -n "$arn" ]] || die "stack $STACK has no third-party platform: deploy it with
WXAUTH_COMPONENT_APPID and WXAUTH_COMPONENT_SECRET_ARN first (docs/operators.md, \"Third-party
platform login\")"
  local name
  for name in WECHAT_COMPONENT_SECRET WECHAT_COMPONENT_TOKEN WECHAT_COMPONENT_AES_KEY; do
    [[ -n "${!name:-}" ]] || die "set $name (the platform's secret is not stored; logins of its
apps fail until you run, with WECHAT_COMPONENT_SECRET, WECHAT_COMPONENT_TOKEN and
WECHAT_COMPONENT_AES_KEY set:  infra/put-secrets.sh component-secret)"
  done
  local value
  value="$(cd "$ROOT" && "$PYTHON" -c 'import json, os, sys
from chalicelib.errors import ConfigurationError
from chalicelib.setting_values import ComponentKeys
try:
    keys = ComponentKeys.of(*(os.environ["WECHAT_COMPONENT_" + n] for n in (
        "SECRET", "TOKEN", "AES_KEY")), source="WECHAT_COMPONENT_SECRET/_TOKEN/_AES_KEY")
except ConfigurationError as e:
    sys.exit("infra/put-secrets.sh: %s" % e)
sys.stdout.write(json.dumps({"secret": keys.secret, "token": keys.token,
                             "encoding_aes_key": keys.encoding_aes_key}))')" || exit 1
  printf '%s' "$value" | put_from_stdin "$arn"
  echo "third-party platform's secret stored in $arn"
}

init_signing_keys() {
  local arn keyset
  arn="$(output SigningKeysSecretArn)"
  if has_value "$arn"; then
    die "the signing key set already exists; use rotate-signing-key"
  fi
  keyset="$(cd "$ROOT" && "$PYTHON" -m chalicelib.signing_keys new-keyset)"
  printf '%s' "$keyset" | keyset_summary >/dev/null || die "new-keyset printed no key set"
  printf '%s' "$keyset" | put_from_stdin "$arn"
  echo "signing key set stored in $arn: $(printf '%s' "$keyset" | keyset_summary)"
}

rotate_signing_key() {
  local arn current next
  arn="$(output SigningKeysSecretArn)"
  has_value "$arn" || die "no signing key set yet; use init-signing-keys"
  current="$(aws secretsmanager get-secret-value --secret-id "$arn" \
    --query SecretString --output text)"
  # The old active key stays published at least one access token lifetime after it retires.
  next="$(cd "$ROOT" && printf '%s' "$current" \
    | AUTH_ACCESS_TTL="$(parameter AccessTokenTtl)" "$PYTHON" -m chalicelib.signing_keys rotate)"
  printf '%s' "$next" | keyset_summary >/dev/null || die "rotate printed no key set"
  printf '%s' "$next" | put_from_stdin "$arn"
  echo "signing key rotated in $arn: $(printf '%s' "$next" | keyset_summary)"
  echo "every warm function container signs with the new key within 5 minutes"
}

status() {
  local name arn
  for name in WeChatSecretArn SigningKeysSecretArn; do
    arn="$(output "$name")"
    if has_value "$arn"; then echo "$name: set ($arn)"; else echo "$name: EMPTY ($arn)"; fi
  done
  arn="$(component_arn)"
  if [[ -n "$arn" ]]; then
    if has_value "$arn"; then
      echo "ComponentSecretArn: set ($arn)"
    else
      echo "ComponentSecretArn: EMPTY ($arn)"
    fi
  fi
}

ensure() {
  local arn
  arn="$(output SigningKeysSecretArn)"
  has_value "$arn" || init_signing_keys
  arn="$(output WeChatSecretArn)"
  has_value "$arn" || wechat_secret
  arn="$(component_arn)"
  if [[ -n "$arn" ]] && ! has_value "$arn"; then component_secret; fi
}

case "${1:-}" in
  wechat-secret) wechat_secret ;;
  init-signing-keys) init_signing_keys ;;
  rotate-signing-key) rotate_signing_key ;;
  component-secret) component_secret ;;
  status) status ;;
  ensure) ensure ;;
  *) sed -n '2,23p' "$0" >&2; exit 2 ;;
esac
