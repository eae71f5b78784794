"""symaffect.train"""
