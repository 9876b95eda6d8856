"""A small demo website that includes the tracker and personalises its hero by persona."""
