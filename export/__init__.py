"""The shipped digit model: this folder is installed as the package data formdigits._export."""
