"""What the label vector means: attribute names, exclusive groups, and the target labels built from them.

CelebA-style attributes are independent bits except for declared exclusive groups (the hair colours:
at most one is set). A folder dataset's classes form one exclusive group that is always one-hot.
"""

import dataclasses

import numpy as np

from stargan_tf.config import ATTRIBUTE_DATASETS, FOLDER_DATASETS

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
    """Return a copy of `labels` (N, dim) with entry `index` set to `value`; the other members of its exclusive group
    are scaled by (1 - value): 1 clears them, 0 leaves them, and a fraction moves a one-colour label part-way to the
    new colour (Black_Hair=1, then Blond_Hair=0.6: 0.4 black, 0.6 blond)."""
    out = np.array(labels, dtype=np.float32, copy=True)
    group = spec.group_of(index)
    if group is not None:
        others = [i for i in group if i != index]
        out[:, others] *= np.float32(1.0 - value)
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


def target_names(spec):
    """What each target of `target_labels(spec, ...)` does, for grid headers: the name of a group member or class
    it sets ('Blond_Hair'), or '<name> flipped' for an attribute it flips."""
    return [name if spec.one_hot or spec.group_of(i) is not None else f"{name} flipped"
            for i, name in enumerate(spec.names)]


def predicted_part(spec, probabilities):
    """D's probabilities for one part (spec.dim,) -> its label as 0/1: attributes rounded, an exclusive group's most
    likely member set when at least 0.5 (at most one hair colour), a one-hot spec's most likely class."""
    probabilities = np.asarray(probabilities, np.float32)
    label = (probabilities >= 0.5).astype(np.float32)
    for group in spec.exclusive_groups:
        members = list(group)
        best = members[int(np.argmax(probabilities[members]))]
        label[members] = 0.0
        if spec.one_hot or probabilities[best] >= 0.5:
            label[best] = 1.0
    return label


MASK = "mask"


@dataclasses.dataclass(frozen=True)
class LabelLayout:
    """The generator's label: one part per dataset, then (when training on several) a one-hot mask vector.

    With two datasets the label is `[c_first, c_second, mask]`: the part of the dataset an image comes from is
    filled, the other is zero, and the mask marks which part is valid (the paper's Section 3.2).
    """

    parts: tuple  # ((dataset name, LabelSpec), ...)

    @property
    def has_mask(self):
        return len(self.parts) > 1

    @property
    def datasets(self):
        return tuple(name for name, _ in self.parts)

    @property
    def cls_dim(self):
        """Width of the discriminator's classification output: every part, no mask."""
        return sum(spec.dim for _, spec in self.parts)

    @property
    def dim(self):
        return self.cls_dim + (len(self.parts) if self.has_mask else 0)

    def spec(self, dataset):
        return dict(self.parts)[dataset]

    def offset(self, dataset):
        """Start of `dataset`'s part in the label (and in D's classification logits)."""
        start = 0
        for name, spec in self.parts:
            if name == dataset:
                return start
            start += spec.dim
        raise KeyError(dataset)

    def encode(self, dataset, part):
        """Full labels (N, dim) for images of `dataset` with part labels `part` (N, spec.dim).

        Written as `part @ placement + mask row`, so the same code serves numpy arrays and tf tensors.
        """
        start, width = self.offset(dataset), self.spec(dataset).dim
        placement = np.zeros((width, self.dim), np.float32)
        placement[np.arange(width), start + np.arange(width)] = 1.0
        mask = np.zeros((1, self.dim), np.float32)
        if self.has_mask:
            mask[0, self.cls_dim + self.datasets.index(dataset)] = 1.0
        if isinstance(part, np.ndarray) or not hasattr(part, "dtype"):  # arrays and lists; tf tensors stay tensors
            part = np.asarray(part, np.float32)
        return part @ placement + mask

    def targets(self, dataset, c_org_part):
        """Sample/test targets for images of `dataset`: every domain of every part, as full labels.

        For the image's own dataset the official `create_labels` targets; for another dataset (whose labels
        are unknown) the same built from all-zero labels.
        """
        c_org_part = np.asarray(c_org_part, np.float32)
        out = []
        for name, spec in self.parts:
            base = c_org_part if name == dataset else np.zeros((c_org_part.shape[0], spec.dim), np.float32)
            out += [self.encode(name, t) for t in target_labels(spec, base)]
        return out

    def target_names(self):
        """What each column of `targets` does, in its order ('RaFD: happy' with several datasets)."""
        return [(f"{name}: " if self.has_mask else "") + target for name, spec in self.parts
                for target in target_names(spec)]

    def predicted_pairs(self, dataset, probabilities):
        """[(name, 0 or 1)] for `dataset`'s part of D's probabilities (cls_dim,), rounded by `predicted_part`."""
        spec, start = self.spec(dataset), self.offset(dataset)
        predicted = predicted_part(spec, np.asarray(probabilities)[start : start + spec.dim])
        return list(zip(spec.names, predicted.tolist(), strict=True))

    def metadata(self):
        """(names, exclusive group id or -1, label_dataset: the dataset it belongs to, or 'mask') for every entry of the
        label, mask included: the export's metadata attribute_names, exclusive_group and label_dataset."""
        names, groups, label_dataset, next_group = [], [], [], 0
        for name, spec in self.parts:
            entry_group = [-1] * spec.dim
            for members in spec.exclusive_groups:
                for i in members:
                    entry_group[i] = next_group
                next_group += 1
            names += list(spec.names)
            groups += entry_group
            label_dataset += [name] * spec.dim
        if self.has_mask:
            names += [f"{MASK}:{name}" for name in self.datasets]
            groups += [next_group] * len(self.parts)
            label_dataset += [MASK] * len(self.parts)
        return names, groups, label_dataset

    @classmethod
    def from_metadata(cls, names, groups, label_dataset):
        """Rebuild the layout from an export's metadata (the inverse of `metadata`)."""
        parts = []
        for dataset in dict.fromkeys(o for o in label_dataset if o != MASK):
            idx = [i for i, o in enumerate(label_dataset) if o == dataset]
            part_groups = {}
            for j, i in enumerate(idx):
                if groups[i] >= 0:
                    part_groups.setdefault(int(groups[i]), []).append(j)
            members = tuple(tuple(m) for m in part_groups.values() if len(m) > 1)
            one_hot = len(members) == 1 and len(members[0]) == len(idx)
            parts.append((dataset, LabelSpec(tuple(names[i] for i in idx), members, one_hot)))
        return cls(tuple(parts))


def layout_for(config):
    """The label layout a configuration trains: CelebA attributes, folder classes, or both with a mask."""
    parts = []
    if config.dataset in ATTRIBUTE_DATASETS:
        parts.append(("CelebA", attribute_spec(config.selected_attrs)))
    if config.dataset in FOLDER_DATASETS:
        if not config.rafd_classes:
            raise ValueError("the class names of --rafd_image_dir are not known yet (read the folder first)")
        parts.append(("RaFD", class_spec(config.rafd_classes)))
    return LabelLayout(tuple(parts))
