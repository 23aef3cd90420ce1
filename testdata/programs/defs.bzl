"""A macro for the C test programs: one dynamic and one static binary each."""

load("@rules_cc//cc:defs.bzl", "cc_binary")

def test_program(name, srcs, static = True, **kwargs):
    """Defines `name` (dynamically linked) and, if static, `name_static`.

    Args:
      name: target name of the dynamic binary.
      srcs: C sources.
      static: also define `<name>_static`, linked with -static.
      **kwargs: passed to both cc_binary rules (e.g. linkopts, copts).
    """
    linkopts = kwargs.pop("linkopts", [])
    cc_binary(
        name = name,
        srcs = srcs,
        linkopts = linkopts,
        **kwargs
    )
    if static:
        cc_binary(
            name = name + "_static",
            srcs = srcs,
            # With Bazel 4's auto-configured gcc toolchain -static in linkopts
            # is enough (checked with `file`); features = ["fully_static_link"]
            # only adds a second -static, so it is left out.
            linkopts = linkopts + ["-static"],
            **kwargs
        )
