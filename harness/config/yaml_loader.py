"""The YAML loader of study files: a safe loader that refuses a key given twice in one mapping."""

from __future__ import annotations


def safe_unique_key_loader():
    """yaml.SafeLoader that also refuses a key given twice in one mapping (PyYAML keeps the last silently)."""
    import yaml

    class SafeUniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                try:
                    key = self.construct_object(key_node, deep=True)
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # unhashable: the base class reports it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            return super().construct_mapping(node, deep=deep)

    return SafeUniqueKeyLoader
