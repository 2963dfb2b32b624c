"""Reading a YAML file a user wrote (a training config, a recipe, an ablation) into plain data, with one sentence for
each way it can fail.

YAML keeps the last of two equal keys in one mapping without a word: a recipe step written twice under one name ran
once, and a config's ``train:`` section written twice lost the first one's settings. Such a file is refused here,
naming the key and its line. Merge keys (``<<: *base``) still override what they merge in, as YAML intends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


class DuplicateKeyError(yaml.YAMLError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping with a key written twice."""

    def flatten_mapping(self, node):
        # Checked here, before the merge keys' pairs are put in front of the node's own (in place, once per node: an
        # anchored mapping merged elsewhere before it is built itself is flattened then), so that what a merge brings
        # in and the node overrides never reads as a key written twice.
        checked = self.__dict__.setdefault("_checked_nodes", set())
        if id(node) not in checked:
            checked.add(id(node))
            self._refuse_duplicate_keys(node)
        super().flatten_mapping(node)

    def _refuse_duplicate_keys(self, node) -> None:
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            if key_node.tag == "tag:yaml.org,2002:value":  # a bare "=": a string, as flatten_mapping makes it
                key_node.tag = "tag:yaml.org,2002:str"
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: SafeLoader refuses it itself, with its own message
                continue
            if duplicate:
                raise DuplicateKeyError(f"the key {str(key)[:80]!r} is written twice in one mapping (line "
                                        f"{key_node.start_mark.line + 1}); YAML would keep only the last")  # fmt: skip
            seen.add(key)


def loads(text: str) -> Any:
    """``yaml.safe_load`` of ``text``, refusing a key written twice in one mapping (:class:`DuplicateKeyError`)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: plain data only


def read_yaml(path: Path, source: str | None = None) -> Any:
    """The data in the YAML file ``path`` (None for an empty file); a ConfigError naming ``source`` (the path by
    default) when it cannot be read: not text, not YAML, a key written twice, nested past the stack, a number too
    long to convert."""
    source = source or str(path)
    try:
        return loads(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{source} is not valid YAML ({str(e).splitlines()[0]}).") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source} is not UTF-8 text.") from None
    except OSError as e:
        raise ConfigError(f"{source} cannot be read ({e.strerror or e}).") from None
    except RecursionError:
        raise ConfigError(f"{source} is nested too deeply to read.") from None
    except ValueError:  # an integer of more digits than Python converts (4300)
        raise ConfigError(f"{source} holds a number too long to read.") from None
