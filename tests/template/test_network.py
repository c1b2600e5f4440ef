"""Reachability inside infra/database.yaml's VPC, computed from its security groups.

A TCP connection from a member of group A to a member of group B on port p needs both an egress
rule of A and an ingress rule of B that match. This module evaluates every rule of the template
(inline and standalone, under each value of EnableProxy) and compares the resulting
(source, destination, ports) set with exactly the paths EIS needs: nothing missing, nothing extra.
"""

import copy
import ipaddress

import pytest

from conftest import load_cfn, ROOT

ALL_PORTS = frozenset(range(0, 65536))
HTTPS = frozenset({443})
PG = frozenset({5432})

# Who must reach whom, and on which ports; every other pair must be unreachable.
EXPECTED_WITH_PROXY = {
    ("LambdaSecurityGroup", "EndpointSecurityGroup"): HTTPS,   # SQS, Secrets Manager
    ("LambdaSecurityGroup", "ProxySecurityGroup"): PG,
    ("LambdaSecurityGroup", "DatabaseSecurityGroup"): PG,      # direct (proxy bypass)
    ("ProxySecurityGroup", "DatabaseSecurityGroup"): PG,
    ("ProxySecurityGroup", "EndpointSecurityGroup"): HTTPS,    # the proxy reads the secret
}
EXPECTED_WITHOUT_PROXY = {
    k: v for k, v in EXPECTED_WITH_PROXY.items() if "ProxySecurityGroup" not in k
}
# Stand-in CIDR for !Ref VpcCidr: every group's members have addresses inside it.
VPC = ipaddress.ip_network("10.42.0.0/16")


def ref(value):
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            return value["Fn::GetAtt"][0]
    return None


def active(template, use_proxy):
    """The template's resources that exist for EnableProxy = use_proxy."""
    return {k: v for k, v in template["Resources"].items()
            if v.get("Condition") != "UseProxy" or use_proxy}


def ports(rule):
    proto = str(rule.get("IpProtocol"))
    if proto == "-1":
        return ALL_PORTS
    if proto not in ("tcp", "6"):
        return frozenset()
    return frozenset(range(int(rule["FromPort"]), int(rule["ToPort"]) + 1))


def cidr_covers_vpc(cidr):
    if ref(cidr) == "VpcCidr":
        return True
    if isinstance(cidr, str):
        net = ipaddress.ip_network(cidr)
        return VPC.subnet_of(net)
    return False


def matches_peer(rule, peer, direction):
    """True when the rule admits traffic to/from a member of group `peer`."""
    key = "DestinationSecurityGroupId" if direction == "egress" else "SourceSecurityGroupId"
    if key in rule:
        return ref(rule[key]) == peer
    if "CidrIp" in rule:
        # Only a CIDR holding the whole VPC is taken as reaching every group; a narrower one
        # (the 127.0.0.1/32 "no outbound" rules) reaches none of them.
        return cidr_covers_vpc(rule["CidrIp"])
    return False


def rules(resources, group, direction):
    """Every rule of `group` in one direction; the implicit allow-all egress if it has none."""
    inline_key = "SecurityGroupEgress" if direction == "egress" else "SecurityGroupIngress"
    standalone = "AWS::EC2::SecurityGroupEgress" if direction == "egress" else "AWS::EC2::SecurityGroupIngress"
    props = resources[group].get("Properties", {})
    found = list(props.get(inline_key, []))
    found += [r["Properties"] for r in resources.values()
              if r["Type"] == standalone and ref(r["Properties"]["GroupId"]) == group]
    if direction == "egress" and inline_key not in props:
        # CloudFormation keeps the default allow-all egress unless the group lists its own.
        found.append({"IpProtocol": "-1", "CidrIp": "0.0.0.0/0"})
    return found


def reachability(template, use_proxy):
    resources = active(template, use_proxy)
    groups = [k for k, v in resources.items() if v["Type"] == "AWS::EC2::SecurityGroup"]
    result = {}
    for src in groups:
        for dst in groups:
            if src == dst:
                continue
            out = set()
            for e in rules(resources, src, "egress"):
                if matches_peer(e, dst, "egress"):
                    out |= ports(e)
            inn = set()
            for i in rules(resources, dst, "ingress"):
                if matches_peer(i, src, "ingress"):
                    inn |= ports(i)
            if out & inn:
                result[(src, dst)] = frozenset(out & inn)
    return result


def rule_excess(template, use_proxy, expected):
    """Rules granting ports beyond the paths they serve (harmless today only because the other
    side is narrower): (group, direction, rule, excess ports)."""
    resources = active(template, use_proxy)
    groups = [k for k, v in resources.items() if v["Type"] == "AWS::EC2::SecurityGroup"]
    excess = []
    for g in groups:
        for direction in ("egress", "ingress"):
            for rule in rules(resources, g, direction):
                peers = [p for p in groups if p != g and matches_peer(rule, p, direction)]
                if not peers:
                    continue  # a rule to nowhere ("no outbound traffic")
                needed = set()
                for p in peers:
                    needed |= expected.get((g, p) if direction == "egress" else (p, g), set())
                extra = ports(rule) - needed
                if extra:
                    excess.append((g, direction, rule.get("Description"), len(extra)))
    return excess


@pytest.fixture()
def database():
    return copy.deepcopy(load_cfn(ROOT / "infra" / "database.yaml"))


@pytest.mark.parametrize("use_proxy,expected", [(True, EXPECTED_WITH_PROXY),
                                                (False, EXPECTED_WITHOUT_PROXY)])
def test_security_groups_open_exactly_the_needed_paths(database, use_proxy, expected):
    assert reachability(database, use_proxy) == expected


@pytest.mark.parametrize("use_proxy,expected", [(True, EXPECTED_WITH_PROXY),
                                                (False, EXPECTED_WITHOUT_PROXY)])
def test_no_rule_is_wider_than_its_paths(database, use_proxy, expected):
    assert rule_excess(database, use_proxy, expected) == []


def test_proxy_reads_its_secret_through_the_endpoint(database):
    """The path above is useful only if the proxy's secret sits behind that endpoint."""
    r = database["Resources"]
    endpoint = r["SecretsManagerInterfaceEndpoint"]["Properties"]
    assert endpoint["PrivateDnsEnabled"] is True
    assert {"Ref": "EndpointSecurityGroup"} in endpoint["SecurityGroupIds"]
    assert {"Ref": "ProxySecurityGroup"} in r["Proxy"]["Properties"]["VpcSecurityGroupIds"]
    assert r["Proxy"]["Properties"]["Auth"][0]["AuthScheme"] == "SECRETS"


def _drop(name):
    def mutate(t):
        del t["Resources"][name]
    return mutate


def _widen_proxy_egress(t):
    t["Resources"]["ProxySecurityGroup"]["Properties"]["SecurityGroupEgress"][1].update(
        {"FromPort": 0, "ToPort": 65535})


def _drop_proxy_https_egress(t):
    t["Resources"]["ProxySecurityGroup"]["Properties"]["SecurityGroupEgress"].pop(1)


def _open_database_egress(t):
    del t["Resources"]["DatabaseSecurityGroup"]["Properties"]["SecurityGroupEgress"]
    t["Resources"]["LambdaSecurityGroup"]["Properties"]["SecurityGroupIngress"] = [
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": {"Ref": "VpcCidr"}}]


def _database_any_port_from_functions(t):
    t["Resources"]["DatabaseFromFunctions"]["Properties"]["IpProtocol"] = "-1"


@pytest.mark.parametrize("mutate", [
    _drop_proxy_https_egress,         # the proxy is cut off from the Secrets Manager endpoint
    _drop("EndpointsFromProxy"),
    _widen_proxy_egress,
    _open_database_egress,
    _database_any_port_from_functions,  # with the functions' 443 egress: 443 to the database
])
def test_reachability_catches(database, mutate):
    mutate(database)
    assert (reachability(database, True) != EXPECTED_WITH_PROXY
            or rule_excess(database, True, EXPECTED_WITH_PROXY))


# --- inline and standalone rules ------------------------------------------------------------------


def rule_style_problems(template):
    """Inline rules may name CIDRs only (groups naming each other inline form a dependency
    cycle), and no group mixes inline and standalone rules in one direction (CloudFormation
    rewriting the inline list can drop the standalone ones)."""
    r = template["Resources"]
    problems = []
    for name, g in r.items():
        if g["Type"] != "AWS::EC2::SecurityGroup":
            continue
        for direction, key in (("ingress", "SecurityGroupIngress"), ("egress", "SecurityGroupEgress")):
            inline = g["Properties"].get(key, [])
            standalone = [k for k, x in r.items() if x["Type"] == f"AWS::EC2::SecurityGroup{direction.title()}"
                          and ref(x["Properties"]["GroupId"]) == name]
            for rule in inline:
                if "SourceSecurityGroupId" in rule or "DestinationSecurityGroupId" in rule:
                    problems.append((name, direction, "names a group inline"))
            if inline and standalone:
                problems.append((name, direction, f"inline rules and standalone {standalone}"))
    return problems


def test_no_group_mixes_inline_and_standalone_rules(database):
    assert rule_style_problems(database) == []


def _inline_ingress_from_functions(t):
    t["Resources"]["ProxySecurityGroup"]["Properties"]["SecurityGroupIngress"] = [
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432,
         "SourceSecurityGroupId": {"Ref": "LambdaSecurityGroup"}}]


def _standalone_egress_beside_inline(t):
    t["Resources"]["ProxyToDatabase"] = {"Type": "AWS::EC2::SecurityGroupEgress", "Properties": {
        "GroupId": {"Ref": "ProxySecurityGroup"}, "IpProtocol": "tcp", "FromPort": 5432,
        "ToPort": 5432, "DestinationSecurityGroupId": {"Ref": "DatabaseSecurityGroup"}}}


@pytest.mark.parametrize("mutate", [_inline_ingress_from_functions, _standalone_egress_beside_inline])
def test_rule_style_catches(database, mutate):
    mutate(database)
    assert rule_style_problems(database)
