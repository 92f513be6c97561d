"""Render a Kustomize overlay of deploy/k8s/ without the kustomize binary: what the test suite validates.

    python deploy/render.py deploy/k8s/overlays/prod > prod.yaml

``kubectl kustomize`` (or ``kustomize build``) is the real renderer and gives the same documents;
this one exists so the manifests are checked on machines that have neither. It supports exactly
the subset the overlays use, and refuses anything else rather than render it wrongly:
``resources`` (files and folders with a kustomization.yaml), ``namespace``, ``images`` (newName,
newTag) and ``patches`` given by ``path`` (strategic-merge patches naming their target by kind
and metadata.name). In a strategic merge, maps merge key by key, a ``null`` removes a key, lists
of maps with a ``name`` merge item by item on it (containers, env, volumes, ports), and every
other list is replaced, as kustomize does for the fields these manifests patch.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

Document = dict[str, Any]

_SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
# Kinds that are not namespaced; none of ours are, but a namespace must never be set on one.
_CLUSTER_KINDS = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PriorityClass", "StorageClass"}


class RenderError(ValueError):
    """The kustomization uses something this renderer does not support, or names what is not there."""


def load_documents(path: Path) -> list[Document]:
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def strategic_merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = strategic_merge(merged[key], value)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(patch, list) and _named(base) and _named(patch):
        merged_list = [copy.deepcopy(item) for item in base]
        index = {item["name"]: i for i, item in enumerate(merged_list)}
        for item in patch:
            if item["name"] in index:
                merged_list[index[item["name"]]] = strategic_merge(merged_list[index[item["name"]]], item)
            else:
                merged_list.append(copy.deepcopy(item))
        return merged_list
    return copy.deepcopy(patch)


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(item, dict) and "name" in item for item in items)


def _containers(doc: Document) -> list[Document]:
    spec = doc.get("spec", {})
    pod = spec.get("template", {}).get("spec", {}) if "template" in spec else {}
    if doc.get("kind") == "CronJob":
        pod = spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {})
    return [*pod.get("containers", []), *pod.get("initContainers", [])]


def _set_image(doc: Document, images: list[Document]) -> None:
    for container in _containers(doc):
        reference = container["image"]
        slash = reference.rfind("/")
        colon = reference.rfind(":")
        name, tag = (reference[:colon], reference[colon + 1 :]) if colon > slash else (reference, "")
        for image in images:
            if image["name"] == name:
                container["image"] = image.get("newName", name) + ":" + str(image.get("newTag", tag or "latest"))


def render(folder: Path) -> list[Document]:
    """The documents the kustomization in ``folder`` produces, in resource order."""
    kustomization_file = folder / "kustomization.yaml"
    if not kustomization_file.is_file():
        raise RenderError(f"{folder} has no kustomization.yaml")
    [spec] = load_documents(kustomization_file)
    unsupported = set(spec) - _SUPPORTED
    if unsupported:
        raise RenderError(f"{kustomization_file}: not supported here: {', '.join(sorted(unsupported))}")
    docs: list[Document] = []
    for resource in spec.get("resources", []):
        path = (folder / resource).resolve()
        if path.is_dir():
            docs.extend(render(path))
        elif path.is_file():
            docs.extend(load_documents(path))
        else:
            raise RenderError(f"{kustomization_file}: resource {resource} does not exist")
    for entry in spec.get("patches", []):
        if set(entry) != {"path"}:
            raise RenderError(f"{kustomization_file}: only patches given by path are supported, not {sorted(entry)}")
        for patch in load_documents(folder / entry["path"]):
            target = [d for d in docs if d["kind"] == patch["kind"] and d["metadata"]["name"] == patch["metadata"]["name"]]
            if len(target) != 1:
                raise RenderError(f"{entry['path']}: no single {patch['kind']} named {patch['metadata']['name']} to patch")
            docs[docs.index(target[0])] = strategic_merge(target[0], patch)
    if "namespace" in spec:
        for doc in docs:
            if doc["kind"] not in _CLUSTER_KINDS:
                doc.setdefault("metadata", {})["namespace"] = spec["namespace"]
    for doc in docs:
        _set_image(doc, spec.get("images", []))
    return docs


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    yaml.safe_dump_all(render(Path(argv[0])), sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
