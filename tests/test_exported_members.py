import crawler


def test_all_is_sorted_and_importable():
    assert crawler.__all__ == sorted(crawler.__all__)
    for name in crawler.__all__:
        assert hasattr(crawler, name), name
