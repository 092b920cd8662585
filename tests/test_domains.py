import numpy as np
import pytest

from stargan_tf import domains

ATTRS = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]


def test_hair_colours_form_the_exclusive_group():
    spec = domains.attribute_spec(ATTRS)
    assert spec.exclusive_groups == ((0, 1, 2),)


def test_group_follows_names_not_positions():
    spec = domains.attribute_spec(["Male", "Gray_Hair", "Smiling", "Blond_Hair"])
    assert spec.exclusive_groups == ((1, 3),)


def test_target_labels_like_official_create_labels():
    spec = domains.attribute_spec(ATTRS)
    c_org = np.array([[1, 0, 0, 1, 0], [0, 0, 1, 0, 1]], np.float32)
    targets = domains.target_labels(spec, c_org)
    assert len(targets) == 5
    np.testing.assert_array_equal(targets[1], [[0, 1, 0, 1, 0], [0, 1, 0, 0, 1]])  # blond set, others cleared
    np.testing.assert_array_equal(targets[0], [[1, 0, 0, 1, 0], [1, 0, 0, 0, 1]])
    np.testing.assert_array_equal(targets[3], [[1, 0, 0, 0, 0], [0, 0, 1, 1, 1]])  # Male flipped
    np.testing.assert_array_equal(targets[4], [[1, 0, 0, 1, 1], [0, 0, 1, 0, 0]])  # Young flipped


def test_target_names_say_what_each_target_column_does():
    assert domains.target_names(domains.attribute_spec(ATTRS)) == [
        "Black_Hair", "Blond_Hair", "Brown_Hair", "Male flipped", "Young flipped"]
    assert domains.target_names(domains.class_spec(["angry", "happy"])) == ["angry", "happy"]
    joint = domains.LabelLayout((("CelebA", domains.attribute_spec(["Male", "Young"])),
                                 ("RaFD", domains.class_spec(["angry", "happy"]))))
    assert joint.target_names() == ["CelebA: Male flipped", "CelebA: Young flipped", "RaFD: angry", "RaFD: happy"]
    assert len(joint.target_names()) == len(joint.targets("CelebA", np.zeros((1, 2), np.float32)))


def test_class_spec_targets_are_one_hot():
    spec = domains.class_spec(["angry", "happy", "sad"])
    targets = domains.target_labels(spec, np.array([[1, 0, 0], [0, 0, 1]], np.float32))
    np.testing.assert_array_equal(targets[1], [[0, 1, 0], [0, 1, 0]])


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="valid names: Black_Hair, Blond_Hair"):
        domains.attribute_spec(ATTRS).index("Bald")
