"""What the label vector means: attribute names, exclusive groups, and the target labels built from them.

CelebA-style attributes are independent bits except for declared exclusive groups (the hair colours:
at most one is set). A folder dataset's classes form one exclusive group that is always one-hot.
"""

import dataclasses

import numpy as np

HAIR_COLOURS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")


@dataclasses.dataclass(frozen=True)
class LabelSpec:
    """Names of the label's entries and which of them exclude each other."""

    names: tuple
    exclusive_groups: tuple = ()  # tuples of indices into `names`
    one_hot: bool = False  # a folder dataset: exactly one class is set

    @property
    def dim(self):
        return len(self.names)

    def group_of(self, index):
        for group in self.exclusive_groups:
            if index in group:
                return group
        return None

    def index(self, name):
        """Position of `name`; a ValueError lists the valid names."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(f"unknown attribute {name!r}; valid names: {', '.join(self.names)}") from None


def attribute_spec(selected_attrs, exclusive=(HAIR_COLOURS,)):
    """Spec for CelebA-style attributes: each group in `exclusive` restricted to the selected names."""
    names = tuple(selected_attrs)
    groups = []
    for group in exclusive:
        members = tuple(i for i, name in enumerate(names) if name in group)
        if len(members) > 1:
            groups.append(members)
    return LabelSpec(names, tuple(groups))


def class_spec(class_names):
    """Spec for a folder-per-class dataset: one-hot over the sorted class names."""
    names = tuple(class_names)
    return LabelSpec(names, (tuple(range(len(names))),), one_hot=True)


def set_attribute(spec, labels, index, value=1.0):
    """Return a copy of `labels` (N, dim) with entry `index` set; setting a group member clears the others."""
    out = np.array(labels, dtype=np.float32, copy=True)
    group = spec.group_of(index)
    if group is not None and value > 0:
        out[:, list(group)] = 0.0
    out[:, index] = value
    return out


def target_labels(spec, c_org):
    """One target label batch per domain, as the official `create_labels` builds them for samples and tests.

    For a member of an exclusive group: that member set, the rest of its group cleared. For any other
    attribute: that attribute flipped. For a one-hot spec: every image sent to that class.
    """
    c_org = np.asarray(c_org, dtype=np.float32)
    targets = []
    for i in range(spec.dim):
        if spec.one_hot or spec.group_of(i) is not None:
            targets.append(set_attribute(spec, c_org, i, 1.0))
        else:
            flipped = c_org.copy()
            flipped[:, i] = (c_org[:, i] == 0).astype(np.float32)
            targets.append(flipped)
    return targets
