"""symaffect.stream"""
