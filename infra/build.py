"""Build the deployment template and check the Lambda package.

    .venv/bin/python infra/build.py [OUTDIR] [--architecture arm64|x86_64]
                                              (default: build/infra, arm64: the deployed one)

Copies the app's sources (app.py, chalicelib, .chalice/config.json, vendor/) into a scratch
directory, so no stale `.chalice/deployments` zip can be reused, and installs the runtime lock
(requirements.txt: every dependency, transitive included, pinned with its hashes) into its
vendor/ with

    pip install --target vendor --require-hashes --no-deps --only-binary=:all: --no-compile \
        --implementation cp --python-version 3.13 --platform manylinux_2_34_aarch64 ... \
        -r requirements.txt

(wheels for the function's runtime and architecture, whatever this machine is), then runs

    chalice package --pkg-format cloudformation --template-format yaml \
        --merge-template infra/resources.yaml --stage prod OUTDIR

there with an empty requirements.txt (Chalice would resolve the dependencies again, unhashed)
and the stage's lambda_architecture set, the operator's region (us-east-1 if none) and fake
credentials: packaging makes no AWS call. Chalice copies vendor/ into the zip as it is and takes
the function's runtime from the Python that runs it (so this must run on Python 3.13). OUTDIR
then holds `sam.yaml` and `deployment.zip`.

Chalice can only emit an API Gateway REST API, so `sam.yaml` is then rewritten
(`finish_template`): the REST API, its invoke permission, its outputs and the function's `Api`
events are removed, and the app's routes (the paths and methods of that REST API's definition,
which Chalice derives from the app) become one explicit `AWS::ApiGatewayV2::Route` each on the
HTTP API that infra/resources.yaml defines. The login routes (LOGIN_ROUTES: they call WeChat)
target the login function (`LoginHandler`, issue 21), which gets every property of Chalice's
function (`APIHandler`) that infra/resources.yaml does not set for it: the same code, handler
and environment, with concurrency and a log group of its own.

The zip is checked afterwards against the template's Runtime and Architectures, and the build
fails unless every pin of requirements.txt is in it, complete (every file of its RECORD), with
compiled modules built for the function's runtime and architecture (CPython ABI, manylinux
glibc no newer than the runtime's, ELF machine); without boto3 and botocore, which the runtime
provides; and no bigger than its 6.5 MB budget.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
MERGE_TEMPLATE = ROOT / "infra" / "resources.yaml"
DEFAULT_OUTDIR = ROOT / "build" / "infra"
CHALICE_STAGE = "prod"

# What `chalice package` reads from the project: nothing else reaches the zip or template.
SOURCE_FILES = ("app.py", ".chalice/config.json")
SOURCE_DIRS = ("chalicelib", "vendor")
# The runtime lock (`make lock`): what goes into the zip's vendor/, exactly.
RUNTIME_LOCK = "requirements.txt"
DEFAULT_ARCHITECTURE = "arm64"

# Import packages the service cannot start without (checked besides the pins' RECORDs).
REQUIRED_IMPORTS = ("jwt", "cryptography", "requests", "chalicelib")
# The Lambda runtime provides these: a copy in the zip would only add 16 MB (and shadow them).
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")
# The size budget of the zip (bench/RESULTS.md): cold starts download and unpack all of it.
MAX_ZIP_BYTES = 6_500_000  # 6 MB until issues 24 and 25 added 109 KB of our own code

# Lambda runtime -> (CPython ABI tag, glibc of the runtime's OS). python3.11 runs on Amazon
# Linux 2 (glibc 2.26); python3.12+ on Amazon Linux 2023 (glibc 2.34).
RUNTIMES = {
    "python3.11": ("cp311", (2, 26)),
    "python3.12": ("cp312", (2, 34)),
    "python3.13": ("cp313", (2, 34)),
}
# Lambda architecture -> (wheel platform machine, ELF e_machine).
ARCHITECTURES = {"x86_64": ("x86_64", 62), "arm64": ("aarch64", 183)}
LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}

# Lambda's limit for the unzipped function code (zip uploaded through S3).
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class BuildError(Exception):
    """The template could not be built, or the package would not run on Lambda."""


@dataclass(frozen=True)
class Target:
    """The Lambda runtime the package must run on, read from the built template."""

    runtime: str
    abi: str
    glibc: tuple[int, int]
    machine: str
    elf_machine: int


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", nargs="?", type=Path, default=DEFAULT_OUTDIR)
    parser.add_argument(
        "--source", type=Path, default=ROOT, help="project to package (default: this repository)"
    )
    parser.add_argument(
        "--architecture",
        choices=sorted(ARCHITECTURES),
        default=DEFAULT_ARCHITECTURE,
        help=f"the function's Lambda architecture (default: {DEFAULT_ARCHITECTURE}, deployed)",
    )
    args = parser.parse_args(argv)
    try:
        template_path = build(args.outdir, source=args.source, architecture=args.architecture)
    except BuildError as e:
        print(f"infra/build.py: {e}", file=sys.stderr)
        return 1
    print(f"built {template_path} and {template_path.parent / 'deployment.zip'}")
    return 0


def build(outdir: Path, *, source: Path = ROOT, architecture: str = DEFAULT_ARCHITECTURE) -> Path:
    """Package the app for stage prod on `architecture` into `outdir`, check the zip, return
    the template path."""
    runtime = lambda_runtime()
    if architecture not in ARCHITECTURES:
        raise BuildError(f"unknown Lambda architecture {architecture!r}")
    outdir = outdir.resolve()
    source = source.resolve()
    check_botocore_verified(source)
    if outdir.exists():
        shutil.rmtree(outdir)
    lock = (source / RUNTIME_LOCK).read_text()
    with tempfile.TemporaryDirectory(prefix="wxauth-build-") as scratch:
        project = Path(scratch) / "wxauth"
        _copy_sources(source, project)
        set_stage_architecture(project / ".chalice" / "config.json", architecture)
        install_dependencies(
            source / RUNTIME_LOCK, project / "vendor", target_for(runtime, architecture)
        )
        (project / "requirements.txt").write_text("")  # vendor/ holds them: nothing to resolve
        _chalice_package(project, outdir)
    template_path = outdir / "sam.yaml"
    if not template_path.is_file() or not (outdir / "deployment.zip").is_file():
        raise BuildError(f"chalice package did not write sam.yaml and deployment.zip in {outdir}")
    template = finish_template(load_template(template_path))
    template_path.write_text(dump_template(template))
    target = target_of(template)
    if (target.runtime, target.machine) != (runtime, ARCHITECTURES[architecture][0]):
        raise BuildError(
            f"the template's function is {target.runtime} on {target.machine}, "
            f"not {runtime} on {architecture}"
        )
    problems = check_deployment_zip(outdir / "deployment.zip", lock, target)
    if problems:
        raise BuildError(
            "deployment.zip would not run on Lambda "
            f"({target.runtime}, {target.machine}):\n  " + "\n  ".join(problems)
        )
    return template_path


# The lock of the dev venv: its botocore is the one tests/test_aws.py checks chalicelib/aws.py
# against (the zip leaves botocore to the Lambda runtime).
DEV_LOCK = "requirements-dev.txt"


def verified_botocore(source: Path) -> tuple[tuple[int, int], tuple[int, int]]:
    """chalicelib/aws.py's VERIFIED_BOTOCORE, read without importing it."""
    tree = ast.parse((source / "chalicelib" / "aws.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "VERIFIED_BOTOCORE" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise BuildError("chalicelib/aws.py has no VERIFIED_BOTOCORE")


def check_botocore_verified(source: Path) -> None:
    """Refuse to build when the locked botocore is outside the releases chalicelib/aws.py's
    fast path (botocore internals) was checked against: widen VERIFIED_BOTOCORE only after
    tools/check_botocore.py passes on the new release."""
    pinned = re.search(r"^botocore==([0-9][^\s;\\]*)", (source / DEV_LOCK).read_text(), re.M)
    if pinned is None:
        raise BuildError(f"{DEV_LOCK} pins no botocore")
    version = pinned.group(1)
    first, last = verified_botocore(source)
    major, minor = (int(part) for part in version.split(".")[:2])
    if not first <= (major, minor) <= last:
        raise BuildError(
            f"botocore {version} ({DEV_LOCK}) is outside chalicelib/aws.py's VERIFIED_BOTOCORE "
            f"{first} to {last}: run tools/check_botocore.py with it, then widen the range"
        )


def load_template(path: Path) -> dict:
    """Chalice writes long-form intrinsics (`Fn::Sub`, `Ref`), so plain YAML loads it."""
    return yaml.safe_load(path.read_text())


def dump_template(template: dict) -> str:
    return yaml.safe_dump(template, sort_keys=False, width=100)


def target_of(template: dict) -> Target:
    props = template["Resources"]["APIHandler"]["Properties"]
    return target_for(props["Runtime"], props.get("Architectures", ["x86_64"])[0])


def target_for(runtime: str, architecture: str) -> Target:
    if runtime not in RUNTIMES or architecture not in ARCHITECTURES:
        raise BuildError(f"infra/build.py does not know Lambda {runtime} on {architecture}")
    abi, glibc = RUNTIMES[runtime]
    machine, elf_machine = ARCHITECTURES[architecture]
    return Target(runtime, abi, glibc, machine, elf_machine)


def lambda_runtime() -> str:
    """The runtime `chalice package` will write: the one of the Python running this build."""
    runtime = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if runtime not in RUNTIMES:
        raise BuildError(
            f"infra/build.py runs on {runtime}, which is no Lambda runtime it knows "
            f"({', '.join(RUNTIMES)}): run it with .venv/bin/python (`make package`)"
        )
    return runtime


def set_stage_architecture(config_path: Path, architecture: str) -> None:
    """Chalice writes the function's `Architectures` from the stage's lambda_architecture."""
    config = json.loads(config_path.read_text())
    config["stages"][CHALICE_STAGE]["lambda_architecture"] = architecture
    config_path.write_text(json.dumps(config, indent=2) + "\n")


def pip_platforms(target: Target) -> list[str]:
    """Every manylinux tag the runtime's glibc can load, newest first: pip takes each
    --platform literally (manylinux_2_34 does not imply manylinux_2_28)."""
    major, newest = target.glibc
    tags = [f"manylinux_{major}_{minor}_{target.machine}" for minor in range(newest, 16, -1)]
    return [*tags, f"manylinux2014_{target.machine}"]


def install_dependencies(lock: Path, vendor: Path, target: Target) -> None:
    """The lock's wheels for `target`, hash-checked, unpacked into `vendor` (none compiled:
    a .pyc records its source's mtime, so two builds would differ)."""
    command = [
        sys.executable, "-m", "pip", "install",
        "--quiet", "--disable-pip-version-check", "--no-input",
        "--target", str(vendor),
        "--require-hashes", "--no-deps", "--only-binary=:all:", "--no-compile",
        "--implementation", "cp",
        "--python-version", target.runtime.removeprefix("python"),
        *[arg for platform in pip_platforms(target) for arg in ("--platform", platform)],
        "-r", str(lock),
    ]  # fmt: skip
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        command, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise BuildError(
            f"pip could not install {lock.name} for {target.runtime} on {target.machine} "
            f"({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    # Console scripts (charset-normalizer's `normalizer`): not importable, no use on Lambda.
    shutil.rmtree(vendor / "bin", ignore_errors=True)


def _copy_sources(source: Path, project: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCE_FILES:
        if not (source / name).is_file():
            raise BuildError(f"{source / name} is missing")
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, project / name)
    for name in SOURCE_DIRS:
        if (source / name).is_dir():
            shutil.copytree(source / name, project / name, ignore=ignore)
    # IAM policy files a stage may name (unused by prod, whose role is in resources.yaml).
    for policy in (source / ".chalice").glob("policy-*.json"):
        shutil.copy2(policy, project / ".chalice" / policy.name)


def _chalice_package(project: Path, outdir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    env.update(FAKE_CREDENTIALS, AWS_DEFAULT_REGION=region, AWS_EC2_METADATA_DISABLED="true")
    chalice = Path(sys.executable).parent / "chalice"
    command = [
        str(chalice) if chalice.exists() else "chalice",
        "package",
        "--pkg-format", "cloudformation",
        "--template-format", "yaml",
        "--merge-template", str(MERGE_TEMPLATE),
        "--stage", CHALICE_STAGE,
        str(outdir),
    ]  # fmt: skip
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        command, cwd=project, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise BuildError(
            f"chalice package failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )


# -- the template: Chalice's REST API replaced by the HTTP API ------------------------------------

# Defined in infra/resources.yaml; the routes are generated here from the app's.
HTTP_API = "HttpApi"
HTTP_API_STAGE = "HttpApiStage"
HTTP_API_INTEGRATION = "HttpApiIntegration"
HTTP_API_LOGIN_INTEGRATION = "HttpApiLoginIntegration"
HTTP_API_DEFAULT_ROUTE = "HttpApiDefaultRoute"
FUNCTION = "APIHandler"  # Chalice's
LOGIN_FUNCTION = "LoginHandler"  # infra/resources.yaml's, completed from FUNCTION
# The scheduled erasure (issue 25), completed from FUNCTION but for what only an API's
# function has: the live alias and its traffic shifting, SnapStart, reserved concurrency.
DELETION_FUNCTION = "DeletionHandler"
NOT_FOR_DELETION = (
    "AutoPublishAlias",
    "DeploymentPreference",
    "SnapStart",
    "ReservedConcurrentExecutions",
)
# The routes that call WeChat, served by the login function with its own concurrency.
LOGIN_ROUTES = (("POST", "/auth/login"), ("POST", "/auth/phone"))
ROUTE_PREFIX = "HttpApiRoute"
# What Chalice emits for its REST API, none of which the stack keeps.
REST_API = "RestAPI"
REST_API_PERMISSION = "APIHandlerInvokePermission"
REST_API_OUTPUTS = ("RestAPIId", "EndpointURL")
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

ROUTE_CHECKOV_SKIPS = [
    {
        "id": "CKV_AWS_309",
        "comment": (
            "The app authorizes every request itself: login and the token endpoints are public "
            "by design (they issue the tokens), and protected routes check the access token and "
            "its session (revocation), which an API Gateway JWT authorizer cannot."
        ),
    }
]


def finish_template(template: dict) -> dict:
    """Chalice's template, changed where `chalice package` cannot be configured."""
    use_http_api(template)
    complete_login_function(template)
    complete_deletion_function(template)
    return template


def complete_deletion_function(template: dict) -> None:
    """Give the erasure's function Chalice's function's properties (not NOT_FOR_DELETION) and
    metadata that infra/resources.yaml does not set for it: the same code and environment."""
    resources = template["Resources"]
    if DELETION_FUNCTION not in resources:
        raise BuildError(f"infra/resources.yaml defines no {DELETION_FUNCTION}")
    source, deletion = resources[FUNCTION], resources[DELETION_FUNCTION]
    properties = deletion.setdefault("Properties", {})
    for name, value in source["Properties"].items():
        if name not in NOT_FOR_DELETION:
            properties.setdefault(name, copy.deepcopy(value))
    if "Metadata" in source:
        deletion.setdefault("Metadata", copy.deepcopy(source["Metadata"]))


def complete_login_function(template: dict) -> None:
    """Give the login function every property (and the metadata) of Chalice's function that
    infra/resources.yaml does not set for it: one code, one handler, one environment."""
    resources = template["Resources"]
    if LOGIN_FUNCTION not in resources:
        raise BuildError(f"infra/resources.yaml defines no {LOGIN_FUNCTION}")
    source, login = resources[FUNCTION], resources[LOGIN_FUNCTION]
    properties = login.setdefault("Properties", {})
    for name, value in source["Properties"].items():
        properties.setdefault(name, copy.deepcopy(value))
    if "Metadata" in source:
        login.setdefault("Metadata", copy.deepcopy(source["Metadata"]))


def use_http_api(template: dict) -> None:
    """Replace Chalice's REST API with the HTTP API of infra/resources.yaml: one route per app
    route (method and path, from the REST API's definition), all to one Lambda integration."""
    resources = template["Resources"]
    for name in (
        HTTP_API,
        HTTP_API_STAGE,
        HTTP_API_INTEGRATION,
        HTTP_API_LOGIN_INTEGRATION,
        HTTP_API_DEFAULT_ROUTE,
    ):
        if name not in resources:
            raise BuildError(f"infra/resources.yaml defines no {name}")
    if REST_API not in resources:
        raise BuildError(f"chalice package emitted no {REST_API}: cannot read the app's routes")
    routes = app_routes(resources.pop(REST_API))
    missing = sorted(set(LOGIN_ROUTES) - set(routes))
    if missing:
        raise BuildError(f"the login function's routes are not the app's: {missing}")
    resources.pop(REST_API_PERMISSION, None)
    for name in REST_API_OUTPUTS:
        template.get("Outputs", {}).pop(name, None)
    resources["APIHandler"]["Properties"].pop("Events", None)

    route_ids = []
    for method, path in routes:
        name = route_logical_id(method, path)
        if name in resources:
            raise BuildError(f"two routes make the logical id {name}")
        integration = (
            HTTP_API_LOGIN_INTEGRATION if (method, path) in LOGIN_ROUTES else HTTP_API_INTEGRATION
        )
        resources[name] = {
            "Type": "AWS::ApiGatewayV2::Route",
            "Metadata": {"checkov": {"skip": ROUTE_CHECKOV_SKIPS}},
            "Properties": {
                "ApiId": {"Ref": HTTP_API},
                "RouteKey": f"{method} {path}",
                "Target": {"Fn::Sub": f"integrations/${{{integration}}}"},
            },
        }
        route_ids.append(name)

    stage = resources[HTTP_API_STAGE]
    keys = {f"{method} {path}" for method, path in routes}
    unknown = sorted(set(stage["Properties"].get("RouteSettings", {})) - keys)
    if unknown:
        raise BuildError(f"{HTTP_API_STAGE} has RouteSettings for routes the app lacks: {unknown}")
    # A stage's RouteSettings may only name routes that exist already.
    stage["DependsOn"] = [*route_ids, HTTP_API_DEFAULT_ROUTE]


def app_routes(rest_api: dict) -> list[tuple[str, str]]:
    """(METHOD, path) of every route Chalice put in its REST API definition, sorted."""
    paths = rest_api["Properties"]["DefinitionBody"]["paths"]
    routes = sorted(
        (method.upper(), path)
        for path, operations in paths.items()
        for method in operations
        if method in HTTP_METHODS
    )
    if not routes:
        raise BuildError("the app has no routes")
    return routes


def route_logical_id(method: str, path: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", path)
    return ROUTE_PREFIX + method.capitalize() + "".join(w[:1].upper() + w[1:] for w in words)


# -- the package check --------------------------------------------------------------------------


def check_deployment_zip(zip_path: Path, requirements: str, target: Target) -> list[str]:
    """Everything that would stop the zip from importing on `target`; empty if none."""
    problems: list[str] = []
    with zipfile.ZipFile(zip_path) as zf:
        infos = zf.infolist()
        names = {info.filename for info in infos}
        if "app.py" not in names:
            problems.append("app.py is missing")
        for package in REQUIRED_IMPORTS:
            if f"{package}/__init__.py" not in names:
                problems.append(f"{package}/ (import {package}) is missing")
        for package in RUNTIME_PROVIDED:
            if f"{package}/__init__.py" in names:
                problems.append(f"{package}/ is in the zip, but the Lambda runtime provides it")
        dist_infos = _dist_infos(names)
        for name, version in _pins(requirements):
            key = _normalize(name)
            if key not in dist_infos:
                problems.append(f"{name}=={version} is missing (no {key}-*.dist-info)")
            elif dist_infos[key][0] != version:
                problems.append(f"{name} is {dist_infos[key][0]} in the zip, pinned {version}")
        for _version, dist_dir in sorted(dist_infos.values()):
            problems.extend(_check_record(zf, names, dist_dir))
            problems.extend(_check_wheel_tags(zf, names, dist_dir, target))
        for info in infos:
            problems.extend(_check_binary(zf, info.filename, target))
        unzipped = sum(info.file_size for info in infos)
        if unzipped > MAX_UNZIPPED_BYTES:
            problems.append(f"unzipped size {unzipped} bytes exceeds Lambda's 250 MB")
    zipped = zip_path.stat().st_size
    if zipped > MAX_ZIP_BYTES:
        problems.append(
            f"the zip is {zipped / 1e6:.2f} MB, over its {MAX_ZIP_BYTES / 1e6:.1f} MB budget"
        )
    return problems


def _pins(requirements: str) -> list[tuple[str, str]]:
    """(name, version) of each `name==version` of a requirements file or lock (whose entries
    continue over lines with `\\` and carry `--hash=` options)."""
    pins = []
    for raw in requirements.replace("\\\n", " ").splitlines():
        line = raw.split("#", 1)[0].strip()
        line = re.sub(r"\s--hash=\S+", "", f" {line}").strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;]+)", line)
        if not m:
            raise BuildError(f"requirements.txt: expected name==version, got {line!r}")
        pins.append((m.group(1), m.group(3)))
    return pins


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _dist_infos(names: set[str]) -> dict[str, tuple[str, str]]:
    """normalized distribution name -> (version, dist-info directory)."""
    found = {}
    for name in names:
        m = re.fullmatch(r"(([^/]+)-([^/-]+)\.dist-info)/METADATA", name)
        if m:
            found[_normalize(m.group(2))] = (m.group(3), m.group(1))
    return found


def _check_record(zf: zipfile.ZipFile, names: set[str], dist_dir: str) -> list[str]:
    record = f"{dist_dir}/RECORD"
    if record not in names:
        return [f"{dist_dir} has no RECORD"]
    missing = []
    for line in zf.read(record).decode().splitlines():
        path = line.rsplit(",", 2)[0]
        if not path or path.startswith(("../", "/")) or ".dist-info/" in path:
            continue
        if path.split("/", 1)[0].endswith(".data"):  # scripts and headers are not needed
            continue
        if path.endswith(".pyc") or "/__pycache__/" in f"/{path}":
            continue
        if path not in names:
            missing.append(path)
    if missing:
        return [f"{dist_dir}: {len(missing)} installed files missing, e.g. {missing[0]}"]
    return []


def _check_wheel_tags(
    zf: zipfile.ZipFile, names: set[str], dist_dir: str, target: Target
) -> list[str]:
    wheel = f"{dist_dir}/WHEEL"
    if wheel not in names:
        return []  # an sdist built by chalice: its binaries are checked file by file
    lines = zf.read(wheel).decode().splitlines()
    if "Root-Is-Purelib: true" in lines:
        return []
    tags = [line.split(":", 1)[1].strip() for line in lines if line.startswith("Tag:")]
    if any(_tag_fits(tag, target) for tag in tags):
        return []
    return [f"{dist_dir} was built for {', '.join(tags) or 'no tag'}, not {target.runtime}"]


def _tag_fits(tag: str, target: Target) -> bool:
    try:
        interpreter, abi, platform = tag.split("-")
    except ValueError:
        return False
    if abi == "abi3":
        m = re.fullmatch(r"cp3(\d+)", interpreter)
        if not m or int(m.group(1)) > int(target.abi[3:]):
            return False
    elif abi == "none":
        if interpreter not in (target.abi, "py3"):
            return False
    elif abi != target.abi:
        return False
    return platform == "any" or _platform_fits(platform, target)


def _platform_fits(platform: str, target: Target) -> bool:
    m = re.fullmatch(r"manylinux_(\d+)_(\d+)_(\w+)", platform)
    if m:
        glibc, machine = (int(m.group(1)), int(m.group(2))), m.group(3)
    else:
        m = re.fullmatch(r"(manylinux1|manylinux2010|manylinux2014)_(\w+)", platform)
        if not m:
            return False
        glibc, machine = LEGACY_MANYLINUX[m.group(1)], m.group(2)
    return machine == target.machine and glibc <= target.glibc


_FOREIGN = re.compile(r"(\.pyd|\.dylib|\.dll|\.exe|-darwin\.so|-win_amd64\.\w+)$")
_SHARED_OBJECT = re.compile(r"\.so(\.\d+)*$")
_EXTENSION_ABI = re.compile(r"\.(cpython-(\d+)-([a-z0-9_]+)-linux-gnu|abi3)\.so$")
_GLIBC_NEED = re.compile(rb"GLIBC_(\d+)\.(\d+)")


def _check_binary(zf: zipfile.ZipFile, name: str, target: Target) -> list[str]:
    if _FOREIGN.search(name):
        return [f"{name} is built for another operating system"]
    if not _SHARED_OBJECT.search(name):
        return []
    data = zf.read(name)
    problems = []
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return [f"{name} is not a 64-bit ELF shared object"]
    byteorder = "little" if data[5] == 1 else "big"
    if int.from_bytes(data[18:20], byteorder) != target.elf_machine:
        problems.append(f"{name} is built for another CPU than {target.machine}")
    m = _EXTENSION_ABI.search(name)
    if (
        m
        and m.group(1) != "abi3"
        and (f"cp{m.group(2)}", m.group(3)) != (target.abi, target.machine)
    ):
        problems.append(f"{name} is an extension for another Python than {target.runtime}")
    needs = {(int(a), int(b)) for a, b in _GLIBC_NEED.findall(data)}
    if needs and max(needs) > target.glibc:
        need = ".".join(map(str, max(needs)))
        problems.append(f"{name} needs glibc {need}; {target.runtime} has {target.glibc}")
    return problems


if __name__ == "__main__":
    sys.exit(main())
