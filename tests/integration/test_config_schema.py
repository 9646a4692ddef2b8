# SPDX-License-Identifier: Apache-2.0
"""`portico --schema` with a real validator (Debian's python3-jsonschema): the schema is valid
draft-07, the default configuration, every example and the README's configuration reference
validate against it, the reference documents every key it has, and the schema and `portico -t`
agree on unknown keys and on the notations of sizes, durations and rates.

The key-by-key comparison of the schema with the loader (every section, every key) is the unit
test tests/unit/config/schema_test.cpp; this test checks the files people write."""

import glob
import json
import os
import re
import tempfile
import unittest

import yaml

from portico_harness import PorticoTestCase, main, run_portico, source_dir

try:
    import jsonschema
except ImportError:  # pragma: no cover - scripts/install-deps.sh test installs it
    jsonschema = None


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML reads YAML 1.1, where `off` and `yes` are booleans and `0x10` an integer; Portico
    (yaml-cpp) reads YAML 1.2, as yaml-language-server does. Only true/false are booleans here
    and numbers are YAML 1.2 core's."""


Yaml12Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag not in ("tag:yaml.org,2002:bool",
                                                  "tag:yaml.org,2002:int",
                                                  "tag:yaml.org,2002:float")]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for tag, rx, first in (
        ("tag:yaml.org,2002:bool", r"^(?:true|false)$", "tf"),
        ("tag:yaml.org,2002:int", r"^[-+]?[0-9]+$", "-+0123456789"),
        ("tag:yaml.org,2002:float",
         r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$", "-+.0123456789")):
    Yaml12Loader.add_implicit_resolver(tag, re.compile(rx), list(first))


def load_yaml(text):
    return yaml.load(text, Loader=Yaml12Loader)


def readme_yaml_blocks():
    with open(os.path.join(source_dir(), "README.md"), encoding="utf-8") as f:
        text = f.read()
    return re.findall(r"```yaml\n(.*?)```", text, re.S)


def example_files():
    root = os.path.join(source_dir(), "conf", "examples")
    return sorted(glob.glob(os.path.join(root, "*.yaml")) +
                  glob.glob(os.path.join(root, "*", "*.yaml")))


def schema_paths(schema, prefix=""):
    """Every key path the schema names: "limits.max_connections", "routes[].websocket.mode",
    "upstreams.*.servers"."""
    out = set()
    for key, sub in schema.get("properties", {}).items():
        path = prefix + key
        out.add(path)
        if "properties" in sub:
            out |= schema_paths(sub, path + ".")
        elif isinstance(sub.get("items"), dict) and "properties" in sub["items"]:
            out |= schema_paths(sub["items"], path + "[].")
        elif isinstance(sub.get("additionalProperties"), dict) and \
                "properties" in sub["additionalProperties"]:
            out |= schema_paths(sub["additionalProperties"], path + ".*.")
    return out


def document_paths(doc, schema, prefix=""):
    """The key paths a document uses, named as schema_paths names them."""
    out = set()
    if not isinstance(doc, dict):
        return out
    props = schema.get("properties", {})
    for key, value in doc.items():
        path = prefix + str(key)
        out.add(path)
        sub = props.get(key, {})
        if "properties" in sub:
            out |= document_paths(value, sub, path + ".")
        elif isinstance(sub.get("items"), dict) and "properties" in sub["items"]:
            for item in value or []:
                out |= document_paths(item, sub["items"], path + "[].")
        elif isinstance(sub.get("additionalProperties"), dict) and \
                "properties" in sub["additionalProperties"]:
            for named in (value or {}).values():
                out |= document_paths(named, sub["additionalProperties"], path + ".*.")
    return out


class ConfigSchemaTest(PorticoTestCase):
    @classmethod
    def setUpClass(cls):
        if jsonschema is None:
            raise unittest.SkipTest("python3-jsonschema missing (scripts/install-deps.sh test)")
        r = run_portico(["--schema"])
        assert r.returncode == 0, r.stderr
        cls.schema_text = r.stdout
        cls.schema = json.loads(r.stdout)
        cls.validator = jsonschema.Draft7Validator(cls.schema)

    def errors(self, doc):
        return ["%s: %s" % ("/".join(str(p) for p in e.absolute_path), e.message)
                for e in self.validator.iter_errors(doc)]

    def check_loader(self, text):
        """`portico -t` on text (written next to a temporary folder): (ok, output)."""
        d = self.tmpdir()
        path = os.path.join(d, "portico.yaml")
        with open(path, "w") as f:
            f.write(text)
        r = run_portico(["-t", "-c", path])
        return r.returncode == 0, r.stdout + r.stderr

    def test_schema_is_valid_draft_07(self):
        jsonschema.Draft7Validator.check_schema(self.schema)
        self.assertEqual(self.schema["$schema"], "http://json-schema.org/draft-07/schema#")
        self.assertFalse(self.schema["additionalProperties"])
        self.assertTrue(self.schema_text.endswith("}\n"))
        # Every pattern is a regular expression (ECMA-262's subset that Python shares).
        def patterns(node):
            if isinstance(node, dict):
                for key, value in node.items():
                    if key == "pattern":
                        yield value
                    else:
                        yield from patterns(value)
            elif isinstance(node, list):
                for value in node:
                    yield from patterns(value)
        found = list(patterns(self.schema))
        self.assertGreater(len(found), 30)
        for pattern in found:
            self.assertTrue(pattern.startswith("^(?:") and pattern.endswith(")$"), pattern)
            re.compile(pattern)

    def test_default_configuration_validates(self):
        with open(os.path.join(source_dir(), "conf", "portico.yaml")) as f:
            text = f.read()
        self.assertIn("# yaml-language-server: $schema=", text)
        self.assertEqual(self.errors(load_yaml(text)), [])

    def test_every_example_validates(self):
        files = example_files()
        self.assertGreaterEqual(len(files), 5, "conf/examples holds the five examples")
        for path in files:
            with self.subTest(example=os.path.relpath(path, source_dir())):
                with open(path) as f:
                    self.assertEqual(self.errors(load_yaml(f.read())), [])

    def test_readme_reference_validates_and_documents_every_key(self):
        blocks = [load_yaml(b) for b in readme_yaml_blocks()]
        documented = set()
        for doc in blocks:
            if isinstance(doc, dict) and "listeners" in doc:  # a whole configuration
                self.assertEqual(self.errors(doc), [])
            documented |= document_paths(doc, self.schema)
        missing = sorted(schema_paths(self.schema) - documented)
        self.assertEqual(missing, [], "keys the loader accepts that README.md's configuration "
                         "reference does not show")

    def test_man_page_names_every_key(self):
        with open(os.path.join(source_dir(), "docs", "man", "portico.yaml.5")) as f:
            man = f.read()
        missing = [p for p in sorted(schema_paths(self.schema))
                   if not re.search(r"(?<![A-Za-z_])%s(?![A-Za-z_])"
                                    % re.escape(re.split(r"[.\]]+", p)[-1]), man)]
        self.assertEqual(missing, [], "keys portico.yaml(5) does not name")

    def test_every_default_validates_against_its_own_key(self):
        def walk(schema, path):
            for key, sub in schema.get("properties", {}).items():
                if "default" in sub:
                    errors = list(jsonschema.Draft7Validator(sub).iter_errors(sub["default"]))
                    self.assertEqual(errors, [], "%s%s: default %r" % (path, key, sub["default"]))
                self.assertTrue(sub.get("description"), path + key)
                walk(sub, path + key + ".")
                if isinstance(sub.get("items"), dict):
                    walk(sub["items"], path + key + "[].")
                if isinstance(sub.get("additionalProperties"), dict):
                    walk(sub["additionalProperties"], path + key + ".*.")
        walk(self.schema, "")

    def test_schema_and_loader_agree_on_samples(self):
        base = "listeners: [{address: 127.0.0.1:0}]\nroutes: [{path: /, handler: health}]\n"
        samples = [
            # (extra YAML, accepted by both)
            ("limits: {max_body_bytes: 10MiB, keepalive_timeout: 0}\n", True),
            ("limits: {max_body_bytes: 10MB}\n", False),
            ("limits: {max_body_bytes: 1.5MiB}\n", False),
            ("limits: {client_header_timeout: 10}\n", False),
            ("limits: {per_ip_upgrade_rate: 0.5/s}\n", True),
            ("limits: {per_ip_upgrade_rate: 5/d}\n", False),
            ("limits: {per_ip_upgrade_rate: off}\n", True),
            ("limits: {per_ip_upgrade_rate: 600/m}\n", True),
            ("limits: {max_conections: 10}\n", False),
            ("workers: auto\n", True),
            ("workers: many\n", False),
            ("workers: 2000\n", False),
            ("limits: {max_connections: 0}\n", False),
            ("limits: {client_header_timeout: 0}\n", False),
            ("limits: {per_ip_ipv6_prefix: 129}\n", False),
            ("reload_drain_timeout: off\n", True),
            ("reload_drain_timeout: 5m\n", True),
            ("log: {level: verbose}\n", False),
            ("log: {access_format: combined}\n", True),
            ("shutdown_timeout: 1500ms\n", True),
            ("unknown_section: {}\n", False),
        ]
        for extra, accepted in samples:
            with self.subTest(sample=extra.strip()):
                text = base + extra
                schema_ok = self.errors(load_yaml(text)) == []
                loader_ok, output = self.check_loader(text)
                self.assertEqual(schema_ok, accepted, self.errors(load_yaml(text)))
                self.assertEqual(loader_ok, accepted, output)

    def test_route_keys_are_closed_and_described(self):
        route = self.schema["properties"]["routes"]["items"]
        self.assertFalse(route["additionalProperties"])
        self.assertIn("health", route["properties"]["handler"]["enum"])
        ws = route["properties"]["websocket"]
        self.assertEqual(ws["properties"]["mode"]["default"], "tunnel")
        self.assertEqual(ws["properties"]["mode"]["enum"], ["tunnel", "frames", "http"])


if __name__ == "__main__":
    main()
