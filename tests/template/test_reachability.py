"""Every AWS service a function calls is reachable from infra/database.yaml's VPC without a NAT.

The services come from the code, not from a list kept here. A function of template.yaml names
its cargo binary (Metadata.BuildProperties.Binary); the package holding that binary and the
workspace crates it depends on (with the features it turns on) are walked, and a service counts
as called when a crate that links `aws-sdk-<service>` constructs `aws_sdk_<service>::Client`
outside its `#[cfg(test)]` module. A service is reachable when the VPC has an endpoint for
`com.amazonaws.<region>.<service>` that the functions can use: a gateway endpoint on the route
table of their subnets, or an interface endpoint with private DNS (the SDK's default endpoint
then resolves inside the VPC) in their subnets, behind a group admitting HTTPS from theirs.
(Each SDK crate used here talks to the endpoint service of its own name; a client whose service
is named otherwise fails this test, which then needs a mapping.)
"""

import copy
import re
import tomllib
from pathlib import Path

import pytest

from conftest import ROOT, load_cfn
from test_network import HTTPS, reachability

CLIENT = re.compile(r"aws_sdk_(\w+)::Client::(?:new|from_conf)\(")
# The unit-test module that ends a source file (the project's convention): not in the binary.
TEST_MODULE = re.compile(r"^#\[cfg\(test\)\]\s*\nmod \w+", re.M)


# --- what the code calls ------------------------------------------------------------------------


def workspace(root):
    """{package name: (directory, parsed Cargo.toml)} and the workspace's path dependencies."""
    top = tomllib.loads((root / "Cargo.toml").read_text(encoding="utf-8"))
    packages = {}
    for member in top["workspace"]["members"]:
        manifest = tomllib.loads((root / member / "Cargo.toml").read_text(encoding="utf-8"))
        packages[manifest["package"]["name"]] = (root / member, manifest)
    return packages


def active_dependencies(manifest, features):
    """{dependency name: features asked of it} of a manifest's [dependencies] with `features`
    (plus "default") on. Feature items: `dep:x` links optional x; `x/f` links x with f; `x?/f`
    asks f of x only if x is linked anyway; anything else is another feature of this crate.
    "default" is taken as on even where a dependent turns it off: at worst a service too many is
    required to be reachable, never one too few."""
    table = manifest.get("features", {})
    on, linked, asked = set(), set(), {}
    todo = list(features | {"default"})
    while todo:
        f = todo.pop()
        if f in on:
            continue
        on.add(f)
        for item in table.get(f, []):
            if item.startswith("dep:"):
                linked.add(item[4:])
            elif "/" in item:
                dep, feature = item.split("/", 1)
                if not dep.endswith("?"):
                    linked.add(dep)
                asked.setdefault(dep.rstrip("?"), set()).add(feature)
            else:
                todo.append(item)
    deps = {}
    for name, spec in manifest.get("dependencies", {}).items():
        spec = spec if isinstance(spec, dict) else {}
        if spec.get("optional") and name not in linked:
            continue
        deps[name] = set(spec.get("features", [])) | asked.get(name, set())
    return deps


def crate_clients(directory):
    """Services whose client the crate's own (non-test) sources construct."""
    found = set()
    for path in sorted((directory / "src").rglob("*.rs")):
        source = path.read_text(encoding="utf-8")
        cut = TEST_MODULE.search(source)
        found |= set(CLIENT.findall(source[: cut.start()] if cut else source))
    return found


def binary_package(packages, binary):
    owners = [name for name, (_, m) in packages.items()
              if any(b["name"] == binary for b in m.get("bin", []))]
    assert len(owners) == 1, f"binary {binary}: packages {owners}"
    return owners[0]


def services_called(root, binary):
    """AWS services the binary calls: the clients constructed by the workspace crates it links,
    each crate taken with every feature any of its dependents turns on."""
    packages = workspace(root)
    features = {}
    todo = [(binary_package(packages, binary), set())]
    while todo:
        name, asked = todo.pop()
        if name in features and asked <= features[name]:
            continue
        features[name] = features.get(name, set()) | asked
        deps = active_dependencies(packages[name][1], features[name])
        todo += [(d, f) for d, f in deps.items() if d in packages]
    services = set()
    for name, on in features.items():
        directory, manifest = packages[name]
        linked = {d[len("aws-sdk-"):].replace("-", "")
                  for d in active_dependencies(manifest, on) if d.startswith("aws-sdk-")}
        services |= crate_clients(directory) & linked
    return services


def vpc_functions(template):
    """{function resource: cargo binary} of the Rust functions that run inside the VPC."""
    return {name: r["Metadata"]["BuildProperties"]["Binary"]
            for name, r in template["Resources"].items()
            if r["Type"] == "AWS::Serverless::Function" and "VpcConfig" in r["Properties"]
            and r.get("Metadata", {}).get("BuildMethod") == "rust-cargolambda"}


# --- what the VPC reaches -----------------------------------------------------------------------


def service_of(endpoint):
    name = endpoint["Properties"]["ServiceName"]
    text = name["Fn::Sub"] if isinstance(name, dict) else name
    return text.rsplit(".", 1)[-1]


def refs(values):
    return {v["Ref"] for v in values if isinstance(v, dict) and "Ref" in v}


def reachable_services(db):
    """Services the functions reach through the VPC's endpoints, under both EnableProxy values."""
    r = db["Resources"]
    outputs = db["Outputs"]
    subnets = refs(outputs["DbSubnetIds"]["Value"]["Fn::Join"][1])
    group = outputs["LambdaSecurityGroupId"]["Value"]["Ref"]
    tables = {a["Properties"]["RouteTableId"]["Ref"] for a in r.values()
              if a["Type"] == "AWS::EC2::SubnetRouteTableAssociation"
              and a["Properties"]["SubnetId"]["Ref"] in subnets}
    paths = [reachability(db, use_proxy) for use_proxy in (True, False)]
    reached = set()
    for e in r.values():
        if e["Type"] != "AWS::EC2::VPCEndpoint":
            continue
        p = e["Properties"]
        if p["VpcEndpointType"] == "Gateway":
            ok = tables and tables <= refs(p.get("RouteTableIds", []))
        else:
            ok = (p.get("PrivateDnsEnabled") is True
                  and subnets <= refs(p.get("SubnetIds", []))
                  and any(all(HTTPS <= path.get((group, g), frozenset()) for path in paths)
                          for g in refs(p.get("SecurityGroupIds", []))))
        if ok:
            reached.add(service_of(e))
    types = {x["Type"] for x in r.values()}
    assert not types & {"AWS::EC2::NatGateway", "AWS::EC2::InternetGateway"}, "endpoints only"
    return reached


# --- tests --------------------------------------------------------------------------------------


def unreachable(template, db, root=ROOT):
    reached = reachable_services(db)
    return {name: services_called(root, binary) - reached
            for name, binary in vpc_functions(template).items()
            if services_called(root, binary) - reached}


def test_every_called_service_is_reachable_without_nat(template, database_template):
    functions = vpc_functions(template)
    assert {"IngestFunction", "ArchiverFunction"} <= set(functions)
    for binary in set(functions.values()):
        assert services_called(ROOT, binary), f"{binary}: no AWS client found (the walk is blind)"
    assert unreachable(template, database_template) == {}


def _drop(name):
    return lambda db: db["Resources"].pop(name)


def _set(name, key, value):
    return lambda db: db["Resources"][name]["Properties"].__setitem__(key, value)


@pytest.mark.parametrize("mutate", [
    _drop("LambdaInterfaceEndpoint"),                      # the fan-out's invokes time out
    _set("LambdaInterfaceEndpoint", "PrivateDnsEnabled", False),
    _set("SqsInterfaceEndpoint", "SubnetIds", [{"Ref": "PrivateSubnetA"}]),
    _drop("EndpointsFromFunctions"),                       # the endpoints refuse the functions
    _set("S3GatewayEndpoint", "RouteTableIds", []),
    _drop("SecretsManagerInterfaceEndpoint"),
])
def test_reachability_catches(template, database_template, mutate):
    db = copy.deepcopy(database_template)
    mutate(db)
    assert unreachable(template, db)


# --- the walk over the code, on a workspace made for it ------------------------------------------


def _write(root: Path, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture()
def tiny_workspace(tmp_path):
    _write(tmp_path, "Cargo.toml", '[workspace]\nmembers = ["app", "lib"]\n')
    _write(tmp_path, "app/Cargo.toml", '[package]\nname = "app"\n[[bin]]\nname = "app"\n'
           '[dependencies]\nlib = { workspace = true }\naws-sdk-sqs.workspace = true\n'
           '[dev-dependencies]\naws-sdk-lambda.workspace = true\n')
    _write(tmp_path, "app/src/main.rs", "fn main() { let _ = aws_sdk_sqs::Client::new(&c); }\n"
           "#[cfg(test)]\nmod tests { fn t() { aws_sdk_lambda::Client::new(&c); } }\n")
    _write(tmp_path, "lib/Cargo.toml", '[package]\nname = "lib"\n[features]\ns3 = ["dep:aws-sdk-s3"]\n'
           '[dependencies]\naws-sdk-s3 = { workspace = true, optional = true }\n'
           "aws-sdk-secretsmanager.workspace = true\n")
    _write(tmp_path, "lib/src/lib.rs", "fn a() { aws_sdk_secretsmanager::Client::new(&c); }\n"
           '#[cfg(feature = "s3")]\nfn b() { aws_sdk_s3::Client::from_conf(c); }\n')
    return tmp_path


def test_the_walk_follows_dependencies_features_and_skips_tests(tiny_workspace):
    assert services_called(tiny_workspace, "app") == {"sqs", "secretsmanager"}
    # The same binary once it turns the library's s3 feature on.
    manifest = tiny_workspace / "app/Cargo.toml"
    manifest.write_text(manifest.read_text().replace(
        "lib = { workspace = true }", 'lib = { workspace = true, features = ["s3"] }'))
    assert services_called(tiny_workspace, "app") == {"sqs", "secretsmanager", "s3"}


def test_the_walk_follows_features_of_features(tiny_workspace):
    """`full = ["lib/s3"]` in app, on by default: the library's s3 client is linked."""
    manifest = tiny_workspace / "app/Cargo.toml"
    manifest.write_text(manifest.read_text().replace(
        "[dependencies]", '[features]\ndefault = ["full"]\nfull = ["lib/s3"]\n[dependencies]'))
    assert services_called(tiny_workspace, "app") == {"sqs", "secretsmanager", "s3"}
