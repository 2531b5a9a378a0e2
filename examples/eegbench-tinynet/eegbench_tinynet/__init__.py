"""TinyNet, an example third-party eegbench backbone."""
